package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config configures an App. Zero fields take the defaults of (*Config).withDefaults.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// AppID names the application: its consumer group, and the prefix of its internal
	// topics (<app-id>-<name>-repartition, <app-id>-<store>-changelog).
	AppID string
	// StateDir holds the instance's Pebble database, in StateDir/<app-id>. Two instances
	// on one machine need different directories. Default: os.TempDir()/strand-stream.
	StateDir string
	// StateMemory is the memory budget of the state database: half block cache, half the
	// two memtables Pebble may hold. The cache lives on the Go heap, so include it in
	// GOMEMLIMIT. Default 64 MiB.
	StateMemory int64
	// CommitInterval is how often input offsets are committed (after flushing outputs and
	// changelogs). It bounds what a crash replays. Default 1 s; Kafka Streams uses 30 s
	// for at-least-once, which replays 30 s of input after a crash. Under ExactlyOnce it is
	// also how long outputs wait to become visible to read_committed readers (Kafka
	// Streams: 100 ms); each commit is one transaction.
	CommitInterval time.Duration
	// OnBadRecord says what to do with an input record that does not decode.
	OnBadRecord BadRecordPolicy
	// DeadLetterTopic receives bad records under BadRecordDeadLetter (created with one
	// partition if missing). Default <app-id>-dead-letter.
	DeadLetterTopic string
	// ReplicationFactor of the internal topics Run creates; -1 (the default) is the
	// broker's default.
	ReplicationFactor int16
	// ExactlyOnce writes each commit's outputs, changelog records and input offsets in one
	// transaction (Kafka Streams' exactly_once_v2): one transactional producer per instance,
	// with the transactional id <app-id>-<InstanceID>, or <app-id>-<a process id kept in the
	// state database> when InstanceID is empty. Inputs and restores read read_committed, and
	// the local state moves only after its transaction commits. The brokers must support
	// transactions (Kafka 2.5+ for KIP-447, or Strand).
	ExactlyOnce bool
	// Standbys is the number of warm replicas per task. Only 0 is supported yet.
	Standbys int
	// InstanceID makes the instance a static group member (KIP-345, group.instance.id): a
	// restarted instance with the same id takes its tasks back without a rebalance, within
	// SessionTimeout. Give every instance its own id.
	InstanceID string
	// SessionTimeout is how long the group waits for a silent member before it moves its
	// tasks; 0 keeps franz-go's default (45 s).
	SessionTimeout time.Duration
	// Metrics, when set, receives the App's Prometheus metrics (records processed, bad
	// records, restored records, commit latency, tasks), labelled app=<app-id>.
	Metrics prometheus.Registerer
	// ClientOpts are extra franz-go options (TLS, SASL, ...) for every client the App makes.
	ClientOpts []kgo.Opt
	// Logger receives lifecycle events (assignments, restores, commits that fail).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = filepath.Join(os.TempDir(), "strand-stream")
	}
	if c.StateMemory == 0 {
		c.StateMemory = 64 << 20
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.AppID + "-dead-letter"
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// App is a topology bound to a configuration: one instance of a stream application.
type App struct {
	cfg  Config
	t    *Topology
	subs []*subtopology

	topicSub map[string]int // resolved input topic → subtopology
	inputs   []string

	mu         sync.Mutex // serializes processing with the group's assign/revoke callbacks
	tasks      map[taskID]*task
	pending    map[taskID]bool // assigned, not yet restored
	offsets    map[string]map[int32]kgo.EpochOffset
	dirty      bool
	lastCommit time.Time
	cl         *kgo.Client
	tcfg       *taskConfig
	failure    error // from a callback, returned by Run

	// Under ExactlyOnce: the session that owns cl, and what the group callbacks report to the
	// poll loop. The session's revoke and lost callbacks hold its own lock while they run, and
	// End takes that lock, so they must not wait for mu (held around End): they take
	// assignMu only and leave the work to the loop.
	sess      *kgo.GroupTransactSession
	assignMu  sync.Mutex
	assigned  map[taskID]bool
	txnDoomed bool // a revoke or loss since the transaction began: it will abort

	sent atomic.Int64 // records handed to the client since the last commit, for commitTransaction
}

// pollWait bounds how long the loop waits for records before it does its timed work.
const pollWait = 100 * time.Millisecond

// New checks the topology and the configuration.
func New(t *Topology, cfg Config) (*App, error) {
	if err := t.Err(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if cfg.AppID == "" {
		return nil, errors.New("config: AppID is required")
	}
	if err := validName(cfg.AppID); err != nil {
		return nil, fmt.Errorf("config: AppID: %w", err)
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("config: Brokers is required")
	}
	if cfg.Standbys != 0 {
		return nil, fmt.Errorf("config: Standbys %d: standby replicas are not implemented yet, only 0 is supported", cfg.Standbys)
	}
	cfg = cfg.withDefaults()
	a := &App{cfg: cfg, t: t, subs: t.subtopologies(), topicSub: map[string]int{}}
	if len(a.subs) == 0 {
		return nil, errors.New("topology: no nodes")
	}
	for _, st := range a.subs {
		for _, name := range st.nodes {
			n := t.nodes[name]
			if n.kind != sourceNode {
				continue
			}
			for _, topic := range n.sourceTopics(cfg.AppID) {
				if prev, dup := a.topicSub[topic]; dup && prev != st.id {
					return nil, fmt.Errorf("topology: topic %s is read by sub-topologies %d and %d; read it once and branch", topic, prev, st.id)
				}
				if _, dup := a.topicSub[topic]; !dup {
					a.inputs = append(a.inputs, topic)
				}
				a.topicSub[topic] = st.id
			}
		}
	}
	return a, nil
}

// Run runs the instance until ctx ends or a task fails: it checks and creates topics,
// opens the state database, joins the group <app-id>, restores the stores of the tasks it
// is given and processes their records. When ctx ends it commits what it processed and
// leaves the group; the returned error is nil then.
func (a *App) Run(ctx context.Context) error {
	cfg := a.cfg
	adminClient, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer adminClient.Close()
	adm := kadm.NewClient(adminClient)

	names := append([]string(nil), a.inputs...)
	for _, st := range a.subs {
		for _, s := range st.stores {
			names = append(names, ChangelogTopic(cfg.AppID, s))
		}
		for _, name := range st.nodes {
			if n := a.t.nodes[name]; n.kind == sinkNode && n.repartition != "" {
				names = append(names, n.sinkTopic(cfg.AppID))
			}
		}
	}
	existing, err := topicCounts(ctx, adm, names)
	if err != nil {
		return err
	}
	l, err := planLayout(a.t, cfg.AppID, a.subs, existing)
	if err != nil {
		return err
	}
	if err := createInternalTopics(ctx, adm, l, existing, cfg.ReplicationFactor); err != nil {
		return err
	}
	if cfg.OnBadRecord == BadRecordDeadLetter {
		if err := EnsureTopic(ctx, adm, cfg.DeadLetterTopic, 1, nil); err != nil {
			return err
		}
	}

	db, err := openStateDB(filepath.Join(cfg.StateDir, cfg.AppID), vfs.Default, cfg.StateMemory)
	if err != nil {
		return err
	}
	defer db.close()

	a.tasks, a.pending, a.offsets = map[taskID]*task{}, map[taskID]bool{}, map[string]map[int32]kgo.EpochOffset{}
	a.assigned = map[taskID]bool{}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.AppID),
		kgo.ConsumeTopics(a.inputs...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Range gives partition p of every topic to one member when the members subscribe
		// alike and the counts match, which is co-partitioning (Kafka's RangeAssignor javadoc).
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.RecordPartitioner(newPartitioner(l.changelogs)),
		kgo.OnPartitionsAssigned(a.onAssigned),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onLost),
	}, cfg.ClientOpts...)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.ExactlyOnce {
		txnOpts, err := transactionOpts(cfg, db)
		if err != nil {
			return err
		}
		opts = append(opts, txnOpts...)
	}
	m, err := newMetrics(cfg.Metrics, cfg.AppID)
	if err != nil {
		return err
	}
	a.tcfg = &taskConfig{appID: cfg.AppID, topology: a.t, db: db, policy: cfg.OnBadRecord,
		deadLetter: cfg.DeadLetterTopic, now: time.Now, metrics: m}
	for {
		err := a.runMember(ctx, opts)
		if !errors.Is(err, errFenced) {
			return err
		}
		// Kafka Streams' TaskManager#handleLostAll under exactly_once_v2: the tasks are
		// dropped without a commit and the thread's producer is made anew, which fences the
		// other holder of the transactional id in turn.
		cfg.Logger.Warn("stream: producer fenced; dropped the tasks, rejoining with a new producer", "app", cfg.AppID, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// runMember runs one group membership: one client (a transactional session under
// ExactlyOnce), from joining to leaving.
func (a *App) runMember(ctx context.Context, opts []kgo.Opt) error {
	if a.cfg.ExactlyOnce {
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		a.sess, a.cl = sess, sess.Client()
		// Take the transactional id now, as Kafka Streams' initTransactions does when a
		// thread starts: the epoch bump aborts what a crashed predecessor left open, which
		// otherwise holds back read_committed readers of its topics (our own repartition
		// topics and changelog restores among them) until the transaction times out.
		if _, _, err := a.cl.ProducerID(ctx); err != nil {
			sess.Close()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("init transactional producer: %w", err)
		}
		if err := sess.Begin(); err != nil {
			sess.Close()
			return fmt.Errorf("begin transaction: %w", err)
		}
	} else {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		a.cl = cl
	}
	a.tcfg.out = clientSender{cl: a.cl, sent: &a.sent}
	a.assignMu.Lock()
	a.assigned, a.txnDoomed = map[taskID]bool{}, false
	a.assignMu.Unlock()

	runErr := a.loop(ctx)

	// Leave cleanly: flush and commit what was processed (ctx is done, so a fresh one).
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.mu.Lock()
	if runErr == nil {
		runErr = a.commit(stopCtx)
	}
	if errors.Is(runErr, errFenced) {
		// Nothing more may be written under this producer, not even an abort.
		a.cl.AbortBufferedRecords(stopCtx) //nolint:errcheck // the client is closed next
	}
	a.closeTasks(nil)
	a.mu.Unlock()
	a.cl.Close()
	return runErr
}

func (a *App) loop(ctx context.Context) error {
	a.lastCommit = time.Now()
	for {
		// The poll waits at most pollWait, so that new tasks restore, wall-clock
		// punctuators fire and commits happen while the inputs are quiet.
		pollCtx, cancel := context.WithTimeout(ctx, pollWait)
		fetches := a.cl.PollRecords(pollCtx, 10000)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			// A poll holds rebalances (BlockRebalanceOnPoll) until AllowRebalance, and
			// leaving the group at Close waits for the revoke callback: allow it first.
			a.cl.AllowRebalance()
			return nil
		}
		err := a.processFetches(ctx, fetches)
		a.cl.AllowRebalance()
		if err != nil && ctx.Err() != nil {
			return nil // stopping: the final commit, on a fresh context, redoes what failed
		}
		if err != nil {
			return err
		}
	}
}

func (a *App) processFetches(ctx context.Context, fetches kgo.Fetches) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failure != nil {
		return a.failure
	}
	var err error
	fetches.EachError(func(topic string, p int32, e error) {
		if err == nil && !errors.Is(e, context.Canceled) && !errors.Is(e, context.DeadlineExceeded) {
			err = fmt.Errorf("fetch %s partition %d: %w", topic, p, e)
		}
	})
	if err != nil {
		return err
	}
	if a.sess != nil {
		if aborted, err := a.abortIfDoomed(ctx); aborted || err != nil {
			// The abort rewound the consumer to the committed offsets: these records
			// come again.
			return err
		}
	}
	if err := a.restorePending(ctx); err != nil {
		return err
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || len(fp.Records) == 0 {
			return
		}
		t := a.tasks[taskID{a.topicSub[fp.Topic], fp.Partition}]
		if t == nil {
			return // revoked between the fetch and now
		}
		for _, r := range fp.Records {
			if err = t.process(r); err != nil {
				return
			}
		}
		a.tcfg.metrics.processed.WithLabelValues(t.id.String()).Add(float64(len(fp.Records)))
		last := fp.Records[len(fp.Records)-1]
		a.markOffset(fp.Topic, fp.Partition, kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1})
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, t := range a.tasks {
		if err := t.punctuate(WallClockTime, now); err != nil {
			return err
		}
	}
	if now.Sub(a.lastCommit) >= a.cfg.CommitInterval {
		return a.commit(ctx)
	}
	return nil
}

func (a *App) markOffset(topic string, p int32, o kgo.EpochOffset) {
	m := a.offsets[topic]
	if m == nil {
		m = map[int32]kgo.EpochOffset{}
		a.offsets[topic] = m
	}
	m[p] = o
	a.dirty = true
}

// commit makes what the tasks processed durable in the order at-least-once needs: caches
// flushed, outputs and changelog records acknowledged (Flush), then each task's state batch
// with the changelog offsets it reflects (one fsync for all), then the input offsets. A crash before the last step
// replays the inputs; one before the second restores the state from the changelog.
func (a *App) commit(ctx context.Context) error {
	if a.sess != nil {
		return a.commitTransaction(ctx)
	}
	a.lastCommit = time.Now()
	defer a.tcfg.metrics.observeCommit(a.lastCommit)
	for _, t := range a.tasks {
		if err := t.flush(); err != nil {
			return err
		}
	}
	if !a.dirty {
		// No input since the last commit, but punctuators may have written.
		for _, t := range a.tasks {
			if !t.batch.Empty() {
				a.dirty = true
				break
			}
		}
	}
	if !a.dirty {
		return nil
	}
	if err := a.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := a.writeTaskStates(); err != nil {
		return err
	}
	var commitErr error
	a.cl.CommitOffsetsSync(ctx, a.offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s partition %d: %w", t.Topic, p.Partition, e)
				}
			}
		}
	})
	if commitErr != nil {
		return fmt.Errorf("commit offsets: %w", commitErr)
	}
	a.dirty = false
	return nil
}

// onAssigned notes the new tasks; the poll loop restores them before it processes any of
// their records, so a long restore does not hold the group's callback.
func (a *App) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.assignMu.Lock()
	defer a.assignMu.Unlock()
	for topic, parts := range assigned {
		sub, ok := a.topicSub[topic]
		if !ok {
			continue
		}
		for _, p := range parts {
			id := taskID{sub, p}
			a.assigned[id] = true
			if a.tasks[id] == nil {
				a.pending[id] = true
			}
		}
	}
	a.cfg.Logger.Info("stream: partitions assigned", "app", a.cfg.AppID, "partitions", assigned)
}

// onRevoked commits everything (Kafka Streams' TaskManager#handleRevocation commits the
// revoked tasks), then closes the tasks that lost a partition.
func (a *App) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if a.sess != nil {
		a.doomTransaction(revoked)
		a.cfg.Logger.Info("stream: partitions revoked; the open transaction aborts", "app", a.cfg.AppID, "partitions", revoked)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failure == nil {
		if err := a.commit(ctx); err != nil {
			a.failure = fmt.Errorf("commit on revoke: %w", err)
		}
	}
	a.closeTasks(revoked)
	a.cfg.Logger.Info("stream: partitions revoked", "app", a.cfg.AppID, "partitions", revoked)
}

// onLost drops the tasks without committing: another member may own them already, and
// their uncommitted state writes are redone by whoever processes the records again.
func (a *App) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if a.sess != nil {
		a.doomTransaction(lost)
		a.cfg.Logger.Warn("stream: partitions lost; the open transaction aborts", "app", a.cfg.AppID, "partitions", lost)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closeTasks(lost)
	a.cfg.Logger.Warn("stream: partitions lost", "app", a.cfg.AppID, "partitions", lost)
}

// closeTasks closes the tasks of the given partitions (all tasks for nil).
func (a *App) closeTasks(parts map[string][]int32) {
	drop := map[taskID]bool{}
	if parts == nil {
		for id := range a.tasks {
			drop[id] = true
		}
		for id := range a.pending {
			drop[id] = true
		}
	}
	for topic, ps := range parts {
		sub, ok := a.topicSub[topic]
		if !ok {
			continue
		}
		for _, p := range ps {
			drop[taskID{sub, p}] = true
		}
	}
	for id := range drop {
		delete(a.pending, id)
		if t := a.tasks[id]; t != nil {
			if err := t.close(); err != nil {
				a.cfg.Logger.Warn("stream: close task", "task", id.String(), "err", err)
			}
			delete(a.tasks, id)
		}
		if a.tcfg != nil {
			a.tcfg.metrics.tasks.Set(float64(len(a.tasks)))
		}
		for topic, sub := range a.topicSub {
			if sub == id.sub {
				delete(a.offsets[topic], id.partition)
			}
		}
	}
}

func (a *App) restorePending(ctx context.Context) error {
	ids := make([]taskID, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].sub < ids[j].sub || ids[i].sub == ids[j].sub && ids[i].partition < ids[j].partition
	})
	for _, id := range ids {
		st := a.subs[id.sub]
		for _, s := range st.stores {
			n, err := restoreStore(ctx, a.cfg, a.tcfg.db, s, id.partition)
			if err != nil {
				return fmt.Errorf("task %s: %w", id, err)
			}
			a.tcfg.metrics.restored.WithLabelValues(s).Add(float64(n))
		}
		if len(st.stores) > 0 {
			if err := a.tcfg.db.sync(); err != nil {
				return err
			}
		}
		t, err := newTask(a.tcfg, st, id.partition)
		if err != nil {
			return err
		}
		a.tasks[id] = t
		delete(a.pending, id)
	}
	a.tcfg.metrics.tasks.Set(float64(len(a.tasks)))
	return nil
}

// clientSender sends a task's records with the App's client, and counts them: under
// ExactlyOnce a record sent with no input behind it (a wall-clock punctuator's) still
// needs its transaction ended.
type clientSender struct {
	cl   *kgo.Client
	sent *atomic.Int64
}

func (s clientSender) send(r *kgo.Record, done func(*kgo.Record, error)) {
	s.sent.Add(1)
	s.cl.Produce(context.Background(), r, done)
}

// newPartitioner partitions changelog records by the partition the task set (a store's
// partition p is the task's p) and every other record as Kafka's default partitioner does:
// murmur2 of the key bytes, sticky for records without a key.
func newPartitioner(manual map[string]bool) kgo.Partitioner {
	return partitioner{manual: manual, keyed: kgo.StickyKeyPartitioner(nil), byTask: kgo.ManualPartitioner()}
}

type partitioner struct {
	manual        map[string]bool
	keyed, byTask kgo.Partitioner
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if p.manual[topic] {
		return p.byTask.ForTopic(topic)
	}
	return p.keyed.ForTopic(topic)
}

// writeTaskStates writes every task's state batch, in task order, and makes them durable
// with one sync of the database: a commit's state is written once its outputs are (at
// least once) or its transaction has committed (exactly once).
func (a *App) writeTaskStates() error {
	ids := make([]taskID, 0, len(a.tasks))
	for id := range a.tasks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].sub < ids[j].sub || ids[i].sub == ids[j].sub && ids[i].partition < ids[j].partition
	})
	for _, id := range ids {
		if err := a.tasks[id].commitState(); err != nil {
			return err
		}
	}
	return a.tcfg.db.sync()
}
