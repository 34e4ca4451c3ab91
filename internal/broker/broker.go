package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/auth"
	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/httpapi"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/txn"
	"github.com/strand-data/strand/internal/vfs"
)

// Config is a node's configuration; DefaultConfig fills DESIGN §3's defaults.
type Config struct {
	NodeID              int32
	DataDir             string
	KafkaAddr           string
	AdvertisedKafkaAddr string
	HTTPAddr            string
	Fsync               journal.FsyncPolicy
	ControllerAddr      string
	Voters              []cluster.Voter
	Logger              *slog.Logger
	// GroupInitialRebalanceDelay overrides group.initial.rebalance.delay.ms when set.
	GroupInitialRebalanceDelay *time.Duration
	// TxnVerifier, when set, replaces the transaction coordinator as the verifier of
	// transactional produce (KIP-890 part 1): tests of the partition side use it.
	TxnVerifier TxnVerifier
	// StaticConfigs are broker configs fixed for this node's run (`serve --broker-config`),
	// as Kafka's server.properties: they override defaults and read-only configs.
	StaticConfigs map[string]string
	// RetentionCheckInterval is how often retention looks at every partition
	// (log.retention.check.interval.ms, Kafka's default 5 minutes).
	RetentionCheckInterval time.Duration
	// CleanerBackoff is how long the log cleaner rests after a round that found nothing to
	// clean (log.cleaner.backoff.ms, Kafka's default 15 s); after a round that cleaned, it
	// looks again at once, as Kafka's CleanerThread does.
	CleanerBackoff time.Duration
	// CleanerDedupeBufferSize is the memory of the cleaner's key map (log.cleaner.dedupe.buffer.size).
	CleanerDedupeBufferSize int64
	// CleanerIOBytesPerSecond bounds the cleaner's reads and writes; 0 for no limit
	// (log.cleaner.io.max.bytes.per.second).
	CleanerIOBytesPerSecond int64
	// ScrubBytesPerSecond bounds the background re-reading of closed segments; 0 disables it.
	ScrubBytesPerSecond int64
	// ScrubIdle is how long the scrubber rests after a pass that found nothing to read; 0
	// means the default (10s).
	ScrubIdle time.Duration
	// HTTPRoutes are extra handlers for the HTTP listener by pattern ("POST /v1/..."), for
	// endpoints that serve adds only when asked (test-only fault injection).
	HTTPRoutes map[string]http.Handler
	// FS holds the partitions' journal files and the metadata store's; nil is the operating
	// system's. Tests use an in-memory, crash-simulating or fault-injecting one.
	FS vfs.FS
	// Security is TLS and authentication (security.go); the zero value is PLAINTEXT.
	Security SecurityConfig
}

// ValidateStaticConfigs checks names and values of static broker configs.
func ValidateStaticConfigs(configs map[string]string) error {
	for name, v := range configs {
		def, ok := cluster.BrokerConfigDef(name)
		if !ok {
			return fmt.Errorf("unknown broker config %q", name)
		}
		if def.Validate != nil {
			if err := def.Validate(v); err != nil {
				return fmt.Errorf("broker config %s: %w", name, err)
			}
		}
	}
	return nil
}

// brokerConfig is a broker config's effective value on this node: a static value given
// at start wins over the cluster's dynamic value and the default.
func (b *Broker) brokerConfig(s *cluster.State, name string) (string, cluster.ConfigSource, bool) {
	if v, ok := b.cfg.StaticConfigs[name]; ok {
		return v, cluster.SourceStaticBroker, true
	}
	return s.BrokerConfig(name)
}

// brokerConfigInt is brokerConfig parsed as an integer.
func (b *Broker) brokerConfigInt(s *cluster.State, name string) int64 {
	if v, ok := b.cfg.StaticConfigs[name]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return s.BrokerConfigInt(name)
}

// DefaultConfig is a single node on loopback with data in ./strand-data.
func DefaultConfig() Config {
	return Config{NodeID: 1, DataDir: "strand-data", KafkaAddr: "127.0.0.1:9092", HTTPAddr: "127.0.0.1:8080",
		Fsync: journal.FsyncAlways, Logger: slog.Default(),
		RetentionCheckInterval: 5 * time.Minute, CleanerBackoff: 15 * time.Second, CleanerDedupeBufferSize: 128 << 20, ScrubBytesPerSecond: 16 << 20,
		ScrubIdle: 10 * time.Second}
}

type topicPartition struct {
	topic string
	id    int32
}

// Broker is one Strand node.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	meta   *cluster.Node
	groups *group.Coordinator
	txns   *txn.Coordinator // txn.go
	// txnLoadMu serializes loadTxns.
	txnLoadMu sync.Mutex
	// txnClient sends this node's requests to other nodes: markers, verification.
	txnClient *kgo.Client
	wire      *kafka.Server
	http      *httpapi.Server
	metrics   *brokerMetrics
	reg       *prometheus.Registry

	mu         sync.RWMutex
	partitions map[topicPartition]*partition.Partition
	reconcileM sync.Mutex

	sessions fetchSessions
	fetchers replicaFetchers
	scrub    *scrubState     // scrub.go
	repair   *repairState    // repair.go
	runCtx   context.Context // Run's: owns the repair goroutines

	isrMu       sync.Mutex
	isrInFlight map[topicPartition]bool

	// txnVerifier asks the transaction coordinator about transactional produces (KIP-890
	// part 1, producers.go); nil verifies nothing.
	txnVerifier TxnVerifier

	pidMu   sync.Mutex
	pidNext int64
	pidEnd  int64

	ready    chan struct{}
	isReady  atomic.Bool
	readyErr atomic.Value
	bg       sync.WaitGroup

	// tls is the listeners' TLS (nil without a certificate); nodePassword the node's own
	// SASL password for this run (security.go).
	tls          *auth.ServerTLS
	nodePassword string
}

// New prepares a node; Run starts it.
func New(cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("broker: empty data dir")
	}
	if err := ValidateStaticConfigs(cfg.StaticConfigs); err != nil {
		return nil, err
	}
	if err := resolveMaintenanceIntervals(&cfg); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b := &Broker{cfg: cfg, log: cfg.Logger, reg: reg, partitions: map[topicPartition]*partition.Partition{}, ready: make(chan struct{}),
		isrInFlight: map[topicPartition]bool{}}
	b.fetchers = replicaFetchers{b: b, byNode: map[int32]*replicaFetcher{}}
	b.metrics = newBrokerMetrics(reg, b)
	b.repair = newRepairState(reg, b)
	return b, nil
}

// Ready is closed once the node accepts produce and fetch.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// KafkaAddr is the bound Kafka address (valid once Ready).
func (b *Broker) KafkaAddr() net.Addr { return b.wire.Addr() }

// HTTPAddr is the bound HTTP address (valid once Ready).
func (b *Broker) HTTPAddr() net.Addr { return b.http.Addr() }

// Run starts the metadata node and the listeners and serves until ctx is done, then shuts
// down in order: stop accepting, finish answers in flight, close the partitions cleanly.
func (b *Broker) Run(ctx context.Context) error {
	b.runCtx = ctx
	fs := vfs.Or(b.cfg.FS)
	if err := vfs.MkdirAllDurably(fs, b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Directories of deleted partitions whose removal a stop interrupted.
	if ents, err := fs.ReadDir(b.cfg.DataDir); err == nil {
		for _, e := range ents {
			if e.IsDir() && strings.HasSuffix(e.Name(), "-delete") {
				vfs.RemoveAll(fs, filepath.Join(b.cfg.DataDir, e.Name()))
			}
		}
	}
	security, err := b.setUpSecurity()
	if err != nil {
		return err
	}
	httpCfg := httpapi.Config{Addr: b.cfg.HTTPAddr, Logger: b.log}
	if b.tls != nil {
		httpCfg.TLS = b.tls.HTTPConfig()
	}
	b.http = httpapi.New(httpCfg, b.reg, b.readiness)
	if err := b.http.Listen(); err != nil {
		return err
	}
	b.wire = kafka.NewServer(kafka.Config{Addr: b.cfg.KafkaAddr, Logger: b.log, Metrics: kafka.NewMetrics(b.reg), Security: security}, b)
	if err := b.wire.Listen(); err != nil {
		b.http.Close()
		return err
	}
	advertised := b.cfg.AdvertisedKafkaAddr
	if advertised == "" {
		advertised = b.wire.Addr().String()
	}
	for pattern, h := range b.cfg.HTTPRoutes {
		b.http.Handle(pattern, h)
	}
	metaHTTP := cluster.NewHTTPHandler()
	metaHTTP.Register(b.http)
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	httpDone := make(chan error, 1)
	go func() { httpDone <- b.http.Serve(httpCtx) }()
	defer func() { stopHTTP(); <-httpDone }()

	meta, err := cluster.Open(ctx, cluster.Config{NodeID: b.cfg.NodeID, DataDir: b.cfg.DataDir, ControllerAddr: b.cfg.ControllerAddr,
		Voters: b.cfg.Voters, KafkaAddr: advertised, Logger: b.log, HTTPAddr: b.http.Addr().String(), HTTP: metaHTTP, FS: b.cfg.FS,
		HeartbeatInterval: time.Duration(b.brokerConfigInt(&cluster.State{}, "broker.heartbeat.interval.ms")) * time.Millisecond,
		SessionTimeout:    time.Duration(b.brokerConfigInt(&cluster.State{}, "broker.session.timeout.ms")) * time.Millisecond,
		LeaveISROnRestart: b.cfg.Fsync != journal.FsyncAlways})
	if err != nil {
		b.wire.Close()
		return err
	}
	b.meta = meta
	defer meta.Close()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = meta.WaitReady(startCtx)
	cancel()
	if err != nil {
		b.wire.Close()
		return err
	}
	if err := b.provisionCredentials(ctx); err != nil {
		b.wire.Close()
		return err
	}
	if err := b.reconcile(); err != nil {
		b.wire.Close()
		b.closePartitions()
		return err
	}
	if err := b.startGroups(ctx); err != nil {
		b.wire.Close()
		b.closePartitions()
		return err
	}

	replicaClient, err := kgo.NewClient(append(b.internalClientOpts(), kgo.SeedBrokers(advertised), kgo.ClientID(fmt.Sprintf("strand-replica-%d", b.cfg.NodeID)),
		kgo.WithLogger(kgo.BasicLogger(io.Discard, kgo.LogLevelNone, nil)))...)
	if err != nil {
		b.wire.Close()
		b.closePartitions()
		return fmt.Errorf("replica fetch client: %w", err)
	}
	defer replicaClient.Close()
	b.fetchers.start(ctx, replicaClient)
	defer b.fetchers.close()

	txnClient, err := newInterBrokerClient(advertised, b.cfg.NodeID, b.internalClientOpts()...)
	if err != nil {
		b.wire.Close()
		b.closePartitions()
		return fmt.Errorf("inter-broker client: %w", err)
	}
	defer txnClient.Close()
	if err := b.startTxns(ctx, txnClient); err != nil {
		b.wire.Close()
		b.closePartitions()
		return err
	}

	b.bg.Add(6)
	go b.watchStorage(ctx)
	go b.watchMetadata(ctx)
	go b.watchISR(ctx)
	go b.runRetention(ctx)
	go b.runCleaner(ctx)
	go b.runProducerExpiry(ctx)
	b.startScrubber(ctx)

	wireDone := make(chan error, 1)
	wireCtx, stopWire := context.WithCancel(context.Background())
	go func() { wireDone <- b.wire.Serve(wireCtx) }()
	b.isReady.Store(true)
	close(b.ready)
	b.log.Info("strand ready", "node", b.cfg.NodeID, "kafka", b.wire.Addr().String(), "http", b.http.Addr().String(),
		"cluster", meta.ClusterID(), "fsync", b.cfg.Fsync.String(), "data", b.cfg.DataDir)

	<-ctx.Done()
	b.log.Info("shutting down")
	b.controlledShutdown()
	b.isReady.Store(false)
	stopWire()
	werr := <-wireDone
	b.fetchers.close()
	b.bg.Wait()
	gerr := b.groups.Close()
	terr := b.txns.Close()
	return errors.Join(werr, gerr, terr, b.closePartitions())
}

// controlledShutdown asks the controller to move leadership off this node before it stops
// serving, so clients move to the new leaders instead of timing out (DESIGN §3: SIGTERM).
func (b *Broker) controlledShutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.meta.ControlledShutdown(ctx); err != nil {
		b.log.Warn("controlled shutdown did not finish; stopping anyway", "err", err)
	}
}

func (b *Broker) readiness() error {
	if !b.isReady.Load() {
		return errors.New("starting or stopping")
	}
	return nil
}

// everyTick calls fn every d until ctx ends; the caller's goroutine runs it.
func everyTick(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// watchMetadata opens and closes partitions as the metadata changes.
func (b *Broker) watchMetadata(ctx context.Context) {
	defer b.bg.Done()
	for {
		ch := b.meta.Changes()
		if err := b.reconcile(); err != nil {
			b.log.Error("applying metadata to local partitions", "err", err)
		}
		if err := b.loadGroups(ctx); err != nil {
			b.log.Error("loading consumer groups", "err", err)
		}
		if err := b.loadTxns(ctx); err != nil {
			b.log.Error("loading transactions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// reconcile makes the open partitions match the metadata: opens what this node hosts,
// closes and deletes what was deleted.
func (b *Broker) reconcile() error {
	b.reconcileM.Lock()
	defer b.reconcileM.Unlock()
	state := b.meta.State()
	want := map[topicPartition]cluster.Partition{}
	for _, t := range state.Topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				if r == b.cfg.NodeID {
					want[topicPartition{t.Name, p.ID}] = p
				}
			}
		}
	}
	var errs []error
	b.mu.RLock()
	var gone []topicPartition
	for tp, p := range b.partitions {
		// Gone, or deleted and created again under the same name since the last look.
		if _, ok := want[tp]; !ok || p.TopicID != state.Topics[tp.topic].ID {
			gone = append(gone, tp)
		}
	}
	b.mu.RUnlock()
	var retire []string
	for _, tp := range gone {
		b.mu.Lock()
		p := b.partitions[tp]
		delete(b.partitions, tp)
		b.mu.Unlock()
		b.fetchers.stop(p)
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
		retire = append(retire, filepath.Join(b.cfg.DataDir, partition.Dir(tp.topic, tp.id)))
	}
	if err := b.retireDirs(retire); err != nil {
		errs = append(errs, err)
	}
	for tp, meta := range want {
		b.mu.RLock()
		p, ok := b.partitions[tp]
		b.mu.RUnlock()
		if ok {
			p.Log().SetConfig(b.journalConfig(state, tp.topic))
		} else {
			dir := filepath.Join(b.cfg.DataDir, partition.Dir(tp.topic, tp.id))
			topicID := state.Topics[tp.topic].ID
			if err := b.claimDir(dir, topicID); err != nil {
				errs = append(errs, err)
				continue
			}
			var err error
			p, err = partition.Open(tp.topic, tp.id, b.cfg.NodeID, dir, b.journalConfig(state, tp.topic), meta.LeaderEpoch)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.TopicID = topicID
			b.mu.Lock()
			b.partitions[tp] = p
			b.mu.Unlock()
		}
		b.applyRole(p, meta)
	}
	return errors.Join(errs...)
}

func (b *Broker) journalConfig(s *cluster.State, topic string) journal.Config {
	c := journal.DefaultConfig()
	c.Logger = b.log
	c.Fsync = b.cfg.Fsync
	c.FS = b.cfg.FS
	c.SegmentBytes = s.TopicConfigInt(topic, "segment.bytes")
	c.SegmentMs = time.Duration(s.TopicConfigInt(topic, "segment.ms")) * time.Millisecond
	c.IndexIntervalBytes = int(s.TopicConfigInt(topic, "index.interval.bytes"))
	c.FileDeleteDelay = time.Duration(s.TopicConfigInt(topic, "file.delete.delay.ms")) * time.Millisecond
	c.CheckpointInterval = time.Duration(b.brokerConfigInt(s, "log.flush.offset.checkpoint.interval.ms")) * time.Millisecond
	c.ProducerIDExpiration = time.Duration(b.brokerConfigInt(s, "producer.id.expiration.ms")) * time.Millisecond
	c.Synced = b.observeFsync
	// A compacted topic's active segment rolls by max.compaction.lag.ms too, as in Kafka,
	// since the cleaner only compacts closed segments.
	if _, compacts := cleanupPolicy(s, topic); compacts {
		if lag := s.TopicConfigInt(topic, "max.compaction.lag.ms"); lag < c.SegmentMs.Milliseconds() {
			c.SegmentMs = time.Duration(lag) * time.Millisecond
		}
	}
	return c
}

// observeFsync is every partition log's Synced hook.
func (b *Broker) observeFsync(took time.Duration) {
	if b.metrics != nil {
		b.metrics.latency.observeFsync(took)
	}
}

func (b *Broker) closePartitions() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for tp, p := range b.partitions {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s-%d: %w", tp.topic, tp.id, err))
		}
		delete(b.partitions, tp)
	}
	return errors.Join(errs...)
}

// partition returns the local replica, if this node hosts it.
func (b *Broker) partition(topic string, id int32) (*partition.Partition, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	p, ok := b.partitions[topicPartition{topic, id}]
	return p, ok
}

// isInternal reports topics clients may not produce to directly.
func isInternal(name string) bool { return strings.HasPrefix(name, "__") }
