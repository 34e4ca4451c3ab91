package cluster

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// Voter is a member of the metadata quorum.
type Voter struct {
	ID   int32
	Addr string
}

// ParseVoters reads "1@127.0.0.1:9093,2@127.0.0.2:9093".
func ParseVoters(s string) ([]Voter, error) {
	var out []Voter
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "@")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || n < 0 || addr == "" {
			return nil, fmt.Errorf("voter %q: want ID@HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("voter %q: %w", part, err)
		}
		out = append(out, Voter{ID: int32(n), Addr: addr})
	}
	return out, nil
}

// Config configures a metadata node.
type Config struct {
	NodeID         int32
	DataDir        string
	ControllerAddr string // raft address; "" runs a single voter over an in-memory transport
	Voters         []Voter
	KafkaAddr      string // advertised host:port of this broker
	// HTTPAddr is where this node's HTTP listener answers; other nodes forward proposals
	// and heartbeats to the leader's. HTTP, when set, is the handler on that listener that
	// Open attaches this node to.
	HTTPAddr string
	HTTP     *HTTPHandler
	// HeartbeatInterval (broker.heartbeat.interval.ms) is how often this broker heartbeats
	// the controller; SessionTimeout (broker.session.timeout.ms) how long the controller
	// waits before fencing a silent broker. Zero takes Kafka's defaults, 2 s and 9 s.
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	Logger            *slog.Logger
	// FS holds the metadata store's files; nil is the operating system's.
	FS vfs.FS
	// LeaveISROnRestart is set when this broker's logs may have lost acknowledged records
	// in an operating-system crash (an fsync policy other than always): at registration it
	// gives up leaderships and ISR places that another live ISR member can take, and
	// rejoins the ISR by catching up, as Kafka fences a restarting broker.
	LeaveISROnRestart bool
}

// Node is this process's member of the metadata quorum and its view of the metadata.
type Node struct {
	cfg   Config
	raft  *raft.Raft
	fsm   *fsm
	store *metaStores
	trans raft.Transport
	// guard refuses votes while the node rebuilds lost metadata; nil when it did not lose any.
	guard  *voteGuard
	client *http.Client

	ctx          context.Context // ends at Close; owns every goroutine below
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	startHB      sync.Once
	live         liveness
	shuttingDown atomic.Bool
}

// Open starts the metadata node, bootstrapping a new cluster on an empty data dir.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 9 * time.Second
	}
	fsys := vfs.Or(cfg.FS)
	dir := filepath.Join(cfg.DataDir, "meta")
	if err := vfs.MkdirAllDurably(fsys, dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata dir: %w", err)
	}
	logOut := &slogWriter{log: cfg.Logger.With("component", "raft")}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Error, Output: logOut})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(cfg.NodeID)))
	rc.Logger = hlog
	rc.HeartbeatTimeout = 300 * time.Millisecond
	rc.ElectionTimeout = 300 * time.Millisecond
	rc.LeaderLeaseTimeout = 150 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = 4096

	voters := max(len(cfg.Voters), 1)
	store, err := openMetaStores(fsys, dir, cfg.NodeID, voters, cfg.Logger, hlog)
	if err != nil {
		return nil, err
	}
	var trans raft.Transport
	self := raft.ServerAddress("node-" + strconv.Itoa(int(cfg.NodeID)))
	if cfg.ControllerAddr == "" {
		_, trans = raft.NewInmemTransport(self)
	} else {
		tcp, err := newMetaTransport(cfg.ControllerAddr, hlog)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("metadata transport on %s: %w", cfg.ControllerAddr, err)
		}
		trans, self = tcp, raft.ServerAddress(cfg.ControllerAddr)
	}
	var guard *voteGuard
	if store.rebuild != "" {
		// No bootstrap: with no configuration raft never campaigns, and learns the voters
		// from the leader's entries or snapshot; the guard keeps it from voting meanwhile.
		cfg.Logger.Error("metadata lost; rebuilding it from the leader, refusing votes until caught up", "reason", store.rebuild)
		guard = newVoteGuard(trans, cfg.Logger)
		trans = guard
	} else if err := bootstrapIfNew(rc, cfg, store, trans, self, fsys, dir); err != nil {
		closeTransport(trans)
		store.Close()
		return nil, err
	}
	// Replication to a slow follower and the leader's own applies read recent entries; the
	// cache keeps them from a file read (and CRC check) each.
	logs, err := raft.NewLogCache(512, store.log)
	if err != nil {
		closeTransport(trans)
		store.Close()
		return nil, fmt.Errorf("metadata log cache: %w", err)
	}
	f := newFSM()
	r, err := raft.NewRaft(rc, f, logs, store.log, store.snaps, trans)
	if err != nil {
		closeTransport(trans)
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n := &Node{cfg: cfg, raft: r, fsm: f, store: store, trans: trans, guard: guard, client: &http.Client{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(1)
	go n.leadershipLoop(n.ctx)
	if guard != nil {
		n.wg.Add(1)
		go n.watchRebuild(n.ctx, fsys, dir)
	}
	if cfg.HTTP != nil {
		cfg.HTTP.node.Store(n)
	}
	return n, nil
}

// Close stops the node's loops and raft and releases the metadata store.
func (n *Node) Close() error {
	if n.cfg.HTTP != nil {
		n.cfg.HTTP.node.CompareAndSwap(n, nil)
	}
	n.cancel()
	n.wg.Wait()
	n.client.CloseIdleConnections()
	err := n.raft.Shutdown().Error()
	closeTransport(n.trans)
	return errors.Join(err, n.store.Close())
}

// NodeID is this node's id.
func (n *Node) NodeID() int32 { return n.cfg.NodeID }

// ClusterID is the cluster's id, fixed when the cluster was first started.
func (n *Node) ClusterID() string { return n.State().ClusterID }

// State is the current metadata snapshot.
func (n *Node) State() *State {
	s := n.fsm.state.Load()
	if _, id := n.raft.LeaderWithID(); id != "" {
		if v, err := strconv.Atoi(string(id)); err == nil && int32(v) != s.ControllerID {
			c := *s
			c.ControllerID = int32(v)
			return &c
		}
	}
	return s
}

// Changes returns a channel closed at the next metadata change.
func (n *Node) Changes() <-chan struct{} {
	n.fsm.mu.Lock()
	defer n.fsm.mu.Unlock()
	return n.fsm.changed
}

// WaitReady returns once a leader of the quorum exists, this node has applied the log up
// to its own registration, and its broker is registered; then the node starts heartbeating.
func (n *Node) WaitReady(ctx context.Context) error {
	if len(n.cfg.Voters) <= 1 {
		// A single voter elects itself; the barrier makes it apply the whole log.
		if err := pollUntil(ctx, 20*time.Millisecond, func() bool { return n.raft.State() == raft.Leader }); err != nil {
			return fmt.Errorf("waiting for metadata leadership: %w", err)
		}
		if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
			return fmt.Errorf("metadata barrier: %w", err)
		}
	}
	// A node rebuilding lost metadata is not ready until it has caught up with the leader.
	if err := n.waitRebuilt(ctx); err != nil {
		return err
	}
	// With more voters the registration below goes through whichever node leads; propose
	// returns once this node has applied it, and so everything before it.
	if n.fsm.state.Load().ClusterID == "" {
		if err := n.proposeIdempotent(ctx, "init-cluster", cmdInitCluster{ClusterID: newClusterID()}); err != nil {
			return err
		}
	}
	host, portStr, err := net.SplitHostPort(n.cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("advertised address %q: %w", n.cfg.KafkaAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("advertised port %q: %w", portStr, err)
	}
	b := Broker{ID: n.cfg.NodeID, Host: host, Port: int32(port), HTTPAddr: n.cfg.HTTPAddr}
	if err := n.proposeIdempotent(ctx, "register-broker", cmdRegisterBroker{Broker: b, LeaveISR: n.cfg.LeaveISROnRestart}); err != nil {
		return err
	}
	n.startHB.Do(func() {
		n.wg.Add(1)
		go n.heartbeatLoop(n.ctx)
	})
	return nil
}

// proposeIdempotent commits a command that may safely be applied twice, retrying until it
// commits or ctx ends: at start-up the quorum may still be electing, and a commit can be
// lost to a leadership change ("leadership lost while committing log", here or on the
// leader it was forwarded to); a node must not give up on starting then.
func (n *Node) proposeIdempotent(ctx context.Context, typ string, data any) error {
	for {
		_, err := n.propose(ctx, typ, data)
		if err == nil || ctx.Err() != nil {
			return err
		}
		n.cfg.Logger.Debug("metadata command not committed yet; retrying", "command", typ, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func newClusterID() string {
	var b [16]byte
	crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TopicSpec is what CreateTopic is asked for; -1 partitions or replication factor take the
// broker defaults.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
	Internal          bool
	// Assignment, when set, places the replicas by hand: Assignment[i] are partition i's
	// replicas, the preferred leader first. Partitions and ReplicationFactor must then be -1.
	Assignment [][]int32
}

// CreateTopic validates and commits a new topic, placing its replicas on live brokers.
func (n *Node) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (*Topic, error) {
	s := n.State()
	if spec.Assignment != nil {
		return n.createTopicAssigned(ctx, s, spec, validateOnly)
	}
	if spec.Partitions == -1 {
		spec.Partitions = int32(s.BrokerConfigInt("num.partitions"))
	}
	if spec.ReplicationFactor == -1 {
		spec.ReplicationFactor = int16(s.BrokerConfigInt("default.replication.factor"))
	}
	if err := ValidateTopicName(spec.Name); err != nil {
		return nil, err
	}
	if _, ok := s.Topics[spec.Name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, spec.Name)
	}
	if spec.Partitions <= 0 || spec.Partitions > 1<<20 {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, spec.Partitions)
	}
	for k, v := range spec.Configs {
		if err := validateConfig(topicDefs, k, v); err != nil {
			return nil, err
		}
	}
	t := Topic{Name: spec.Name, ID: newTopicID(), Internal: spec.Internal, Configs: spec.Configs}
	if validateOnly {
		// The placement this node would make now; the controller's may differ if the
		// metadata moves before it applies.
		var err error
		if t.Partitions, err = place(s, 0, spec.Partitions, spec.ReplicationFactor); err != nil {
			return nil, err
		}
		return &t, nil
	}
	v, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: t, Count: spec.Partitions, ReplicationFactor: spec.ReplicationFactor})
	if err != nil {
		return nil, err
	}
	created, err := valueAs[*Topic](v)
	if err != nil || created == nil {
		return nil, err
	}
	return created.clone(), nil // the State's own copy is immutable
}

// createTopicAssigned is CreateTopic with a manual replica assignment.
func (n *Node) createTopicAssigned(ctx context.Context, s *State, spec TopicSpec, validateOnly bool) (*Topic, error) {
	if spec.Partitions != -1 || spec.ReplicationFactor != -1 {
		// Kafka's words (ReplicationControlManager.createTopic).
		return nil, fmt.Errorf("%w: Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time", ErrInvalidRequest)
	}
	if err := ValidateTopicName(spec.Name); err != nil {
		return nil, err
	}
	if _, ok := s.Topics[spec.Name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, spec.Name)
	}
	if len(spec.Assignment) == 0 || len(spec.Assignment) > 1<<20 {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, len(spec.Assignment))
	}
	for k, v := range spec.Configs {
		if err := validateConfig(topicDefs, k, v); err != nil {
			return nil, err
		}
	}
	t := Topic{Name: spec.Name, ID: newTopicID(), Internal: spec.Internal, Configs: spec.Configs}
	var err error
	if t.Partitions, err = manualPartitions(s, 0, spec.Assignment, -1); err != nil || validateOnly {
		return &t, err
	}
	v, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: t, Manual: true})
	if err != nil {
		return nil, err
	}
	created, err := valueAs[*Topic](v)
	if err != nil || created == nil {
		return nil, err
	}
	return created.clone(), nil
}

func newTopicID() [16]byte {
	var id [16]byte
	for id == [16]byte{} {
		crand.Read(id[:])
		id[6] = id[6]&0x0f | 0x40 // UUID version 4
		id[8] = id[8]&0x3f | 0x80
	}
	return id
}

// DeleteTopic removes a topic from the metadata; brokers delete its data when they see it go.
func (n *Node) DeleteTopic(ctx context.Context, name string) error {
	_, err := n.propose(ctx, "delete-topic", cmdDeleteTopic{Name: name})
	return err
}

// CreatePartitions grows a topic to total partitions. A non-nil assignment places the new
// partitions' replicas by hand, one replica list per new partition.
func (n *Node) CreatePartitions(ctx context.Context, name string, total int32, assignment [][]int32, validateOnly bool) error {
	s := n.State()
	t, ok := s.Topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	have := int32(len(t.Partitions))
	if total <= have {
		return fmt.Errorf("%w: topic %s has %d partitions; the count can only grow", ErrInvalidPartitions, name, have)
	}
	if total > 1<<20 {
		return fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, total)
	}
	if assignment != nil {
		if len(assignment) != int(total-have) {
			return fmt.Errorf("%w: Attempted to add %d additional partition(s), but only %d assignment(s) were specified", ErrInvalidReplicaAssignment, total-have, len(assignment))
		}
		parts, err := manualPartitions(s, have, assignment, len(targetOf(&t.Partitions[0])))
		if err != nil || validateOnly {
			return err
		}
		_, err = n.propose(ctx, "add-partitions", cmdAddPartitions{Name: name, Partitions: parts, Manual: true})
		return err
	}
	if validateOnly {
		_, err := place(s, have, total-have, int16(len(targetOf(&t.Partitions[0]))))
		return err
	}
	// Apply places the new replicas over the brokers live when it runs.
	_, err := n.propose(ctx, "add-partitions", cmdAddPartitions{Name: name, Count: total - have})
	return err
}

// AlterTopicConfigs applies incremental config changes to a topic.
func (n *Node) AlterTopicConfigs(ctx context.Context, topic string, ops []ConfigOp, validateOnly bool) error {
	s := n.State()
	t, ok := s.Topics[topic]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	if _, err := applyConfigOps(topicDefs, t.Configs, ops); err != nil || validateOnly {
		return err
	}
	_, err := n.propose(ctx, "topic-configs", cmdTopicConfigs{Name: topic, Ops: ops})
	return err
}

// ReplaceTopicConfigs sets a topic's configs to exactly the given set (legacy AlterConfigs).
func (n *Node) ReplaceTopicConfigs(ctx context.Context, topic string, configs map[string]string, validateOnly bool) error {
	if _, ok := n.State().Topics[topic]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	if configs == nil {
		configs = map[string]string{}
	}
	for k, v := range configs {
		if err := validateConfig(topicDefs, k, v); err != nil {
			return err
		}
	}
	if validateOnly {
		return nil
	}
	_, err := n.propose(ctx, "topic-configs", cmdTopicConfigs{Name: topic, Replace: configs})
	return err
}

// AlterBrokerConfigs applies incremental changes to the cluster-wide broker configs.
func (n *Node) AlterBrokerConfigs(ctx context.Context, ops []ConfigOp, validateOnly bool) error {
	if _, err := applyConfigOps(brokerDefs, n.State().BrokerConfigs, ops); err != nil || validateOnly {
		return err
	}
	_, err := n.propose(ctx, "broker-configs", cmdBrokerConfigs{Ops: ops})
	return err
}

// AllocateProducerIDs reserves count producer ids and returns the first.
func (n *Node) AllocateProducerIDs(ctx context.Context, count int32) (int64, error) {
	v, err := n.propose(ctx, "producer-ids", cmdProducerIDs{Count: count})
	if err != nil {
		return 0, err
	}
	return valueAs[int64](v)
}

// AlterPartition is a partition leader's request to change the ISR (Kafka's
// AlterPartition): leaderID must lead in leaderEpoch, partitionEpoch must be the current
// one, and isr must hold the leader and only replicas, adding none that is fenced. It
// answers the partition as it now is, with PartitionEpoch bumped.
func (n *Node) AlterPartition(ctx context.Context, topic string, partition int32, leaderID, leaderEpoch, partitionEpoch int32, isr []int32) (Partition, error) {
	v, err := n.propose(ctx, "alter-partition", cmdAlterPartition{Topic: topic, Partition: partition,
		LeaderID: leaderID, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, ISR: isr})
	if err != nil {
		return Partition{}, err
	}
	return valueAs[Partition](v)
}

// ControlledShutdown moves leadership off this broker before it stops: the controller
// marks it as shutting down, which elects other ISR members for the partitions it leads
// and takes it out of ISRs; it keeps the partitions nobody else in the ISR can lead. It
// then waits until this node's metadata shows that, and hands raft leadership to another
// voter if it holds it. Without a deadline on ctx it waits at most thirty seconds.
func (n *Node) ControlledShutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	n.shuttingDown.Store(true)
	if _, err := n.propose(ctx, "broker-state", cmdBrokerState{ID: n.cfg.NodeID, ShuttingDown: true}); err != nil {
		return fmt.Errorf("controlled shutdown: %w", err)
	}
	for {
		ch := n.Changes()
		if !n.leadsMovable(n.fsm.state.Load()) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("controlled shutdown: leadership did not move: %w", ctx.Err())
		case <-ch:
		}
	}
	if n.raft.State() == raft.Leader && len(n.cfg.Voters) > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("controlled shutdown: raft leadership transfer: %w", err)
		}
	}
	return nil
}

// leadsMovable reports whether this broker leads a partition another live ISR member could.
func (n *Node) leadsMovable(s *State) bool {
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if p.Leader == n.cfg.NodeID && electFromISR(s, &p, n.cfg.NodeID) >= 0 {
				return true
			}
		}
	}
	return false
}

// Snapshot forces a raft snapshot of the metadata (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// slogWriter routes hclog's text lines into slog.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
