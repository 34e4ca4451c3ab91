package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// StateTopic is the internal topic holding transaction state.
const StateTopic = "__transaction_state"

// Log is one local __transaction_state partition, as the coordinator uses it (the shape of
// group.OffsetsLog; the broker adapts a partition replica). Append writes a record batch
// (acks=all, returns when committed) and returns its base offset; LogEndOffset is the log
// end offset, which a load reads to (as Kafka's, FetchIsolation.LOG_END). Append errors are kerr errors, which the coordinator maps to the codes Kafka's
// TransactionStateManager.appendTransactionToLog answers for them.
type Log interface {
	Append(ctx context.Context, batch []byte) (int64, error)
	ReadBytes(offset, maxBytes int64) ([]byte, error)
	LogStartOffset() int64
	LogEndOffset() int64
}

// Marker asks for one transaction's end marker in each of Partitions.
type Marker struct {
	TransactionalID  string
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	Partitions       []TopicPartition
}

// Markers delivers markers to partition leaders (the broker sends WriteTxnMarkers). It
// returns each partition's error (nil = written and committed); errors are kerr errors. A
// partition missing from the answer counts as not written yet and is asked for again.
type Markers interface {
	WriteMarkers(ctx context.Context, m Marker) map[TopicPartition]error
}

// Env is what the coordinator needs from the broker.
type Env interface {
	AllocateProducerID(ctx context.Context) (int64, error)
	PartitionExists(topic string, partition int32) bool
	// OffsetsPartition is the __consumer_offsets partition of a group (AddOffsetsToTxn).
	OffsetsPartition(group string) int32
}

// Config holds the coordinator's settings; zero values take Kafka's defaults.
type Config struct {
	Partitions    int32         // transaction.state.log.num.partitions
	MaxTimeout    time.Duration // transaction.max.timeout.ms
	AbortInterval time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
	IDExpiration  time.Duration // transactional.id.expiration.ms
	// ExpirationInterval is how often idle transactional ids are looked for
	// (transaction.remove.expired.transaction.cleanup.interval.ms).
	ExpirationInterval time.Duration
	Now                func() time.Time
	Logger             *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = 50
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = 15 * time.Minute
	}
	if c.AbortInterval <= 0 {
		c.AbortInterval = 10 * time.Second
	}
	if c.IDExpiration <= 0 {
		c.IDExpiration = 7 * 24 * time.Hour
	}
	if c.ExpirationInterval <= 0 {
		c.ExpirationInterval = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ownedPartition is a __transaction_state partition this node leads, at one coordinator
// epoch. Work started for it (marker sending, completing writes) stops when ctx ends,
// which Unload and a reload do.
type ownedPartition struct {
	id     int32
	epoch  int32
	log    Log
	ctx    context.Context
	cancel context.CancelFunc
}

// Coordinator runs the transactions of the __transaction_state partitions this node leads.
type Coordinator struct {
	cfg     Config
	env     Env
	markers Markers

	mu      sync.Mutex
	owned   map[int32]*ownedPartition
	loading map[int32]int32 // partition -> coordinator epoch being loaded
	txns    map[string]*txnMeta
	closed  bool

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewCoordinator starts a coordinator with no partitions loaded, and its loop that aborts
// timed-out transactions and expires idle transactional ids; Close stops it.
func NewCoordinator(cfg Config, env Env, markers Markers) *Coordinator {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{cfg: cfg.withDefaults(), env: env, markers: markers, owned: map[int32]*ownedPartition{},
		loading: map[int32]int32{}, txns: map[string]*txnMeta{}, ctx: ctx, cancel: cancel}
	c.wg.Add(1)
	go c.maintenanceLoop()
	return c
}

// Close stops the timeout loop, marker retries and background writes, and waits for them.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, p := range c.owned {
		p.cancel()
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// goLocked runs f in a goroutine the coordinator owns; false once it is closed.
func (c *Coordinator) goLocked(f func()) bool {
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// Load makes this node the coordinator of one __transaction_state partition at
// coordinatorEpoch (the partition's leader epoch): it replays the partition into the table
// and then finishes what the previous coordinator left in flight, as Kafka's
// loadTransactionsForTxnTopicPartition does: transactions in PrepareCommit or PrepareAbort
// get their markers sent again and their Complete state written; Ongoing ones are left to
// the timeout. While it loads, requests for its ids get COORDINATOR_LOAD_IN_PROGRESS.
func (c *Coordinator) Load(ctx context.Context, partition int32, coordinatorEpoch int32, log Log) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("transaction coordinator closed")
	}
	c.unloadLocked(partition)
	c.loading[partition] = coordinatorEpoch
	c.mu.Unlock()

	table, err := c.replay(ctx, partition, log)

	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch, ok := c.loading[partition]; !ok || epoch != coordinatorEpoch || c.closed {
		return fmt.Errorf("load %s-%d at epoch %d: superseded while loading", StateTopic, partition, coordinatorEpoch)
	}
	delete(c.loading, partition)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(c.ctx)
	p := &ownedPartition{id: partition, epoch: coordinatorEpoch, log: log, ctx: pctx, cancel: cancel}
	c.owned[partition] = p
	for id, m := range table {
		c.txns[id] = m
	}
	for _, m := range table {
		if m.state.prepared() {
			c.cfg.Logger.Info("completing a transaction left in flight", "transactional_id", m.id, "state", m.state.String(), "partition", partition)
			c.completeLocked(p, m)
		}
	}
	// Fifty empty partitions load when the topic is created: only state worth knowing is
	// logged at info.
	level := slog.LevelDebug
	if len(table) > 0 {
		level = slog.LevelInfo
	}
	c.cfg.Logger.Log(context.Background(), level, "loaded transaction state", "partition", partition, "coordinator_epoch", coordinatorEpoch, "transactional_ids", len(table))
	return nil
}

// Unload drops a partition's transactions (its leadership moved); requests for them then
// get NOT_COORDINATOR, and markers still being sent for them stop, for the new coordinator
// to send (Kafka's onResignation).
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unloadLocked(partition)
}

func (c *Coordinator) unloadLocked(partition int32) {
	delete(c.loading, partition)
	if p, ok := c.owned[partition]; ok {
		p.cancel()
		delete(c.owned, partition)
	}
	for id, m := range c.txns {
		if m.partition == partition {
			delete(c.txns, id)
		}
	}
}

// IsLoaded reports whether this node coordinates a partition's transactions.
func (c *Coordinator) IsLoaded(partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.owned[partition]
	return ok
}

// ownerLocked finds the loaded partition of a transactional id, or the error Kafka's
// getTransactionState answers: COORDINATOR_LOAD_IN_PROGRESS while it loads,
// NOT_COORDINATOR when another node leads it.
func (c *Coordinator) ownerLocked(id string) (*ownedPartition, int16) {
	partition := PartitionFor(id, c.cfg.Partitions)
	if _, ok := c.loading[partition]; ok {
		return nil, codeLoadInProgress
	}
	p, ok := c.owned[partition]
	if !ok {
		return nil, codeNotCoordinator
	}
	return p, 0
}

// Handle answers InitProducerId (with a transactional id), AddPartitionsToTxn,
// AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions. A nil wait means resp
// is final; otherwise the work has started and wait returns the answer once it is done
// (a state written to the log), or a retriable error when its ctx ends first. Other
// requests get (nil, nil).
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request) (resp kmsg.Response, wait func(context.Context) kmsg.Response) {
	switch r := req.(type) {
	case *kmsg.InitProducerIDRequest:
		return c.initProducerID(r)
	case *kmsg.AddPartitionsToTxnRequest:
		return c.addPartitions(r)
	case *kmsg.AddOffsetsToTxnRequest:
		return c.addOffsets(r)
	case *kmsg.EndTxnRequest:
		return c.endTxn(r)
	case *kmsg.DescribeTransactionsRequest:
		return c.describe(r), nil
	case *kmsg.ListTransactionsRequest:
		return c.list(r), nil
	}
	return nil, nil
}

// SupportedVersions lists the transaction coordinator APIs and the versions implemented.
// EndTxn stops at v4: v5 is KIP-890 part 2 (an epoch bump per transaction), which this
// coordinator does not do. ListTransactions stops at v1 (v2's id pattern is a Java regex).
func (c *Coordinator) SupportedVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: int16(kmsg.InitProducerID), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.AddPartitionsToTxn), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.AddOffsetsToTxn), MinVersion: 0, MaxVersion: 4},
		{ApiKey: int16(kmsg.EndTxn), MinVersion: 0, MaxVersion: 4},
		{ApiKey: int16(kmsg.DescribeTransactions), MinVersion: 0, MaxVersion: 0},
		{ApiKey: int16(kmsg.ListTransactions), MinVersion: 0, MaxVersion: 1},
	}
}

// maintenanceLoop aborts timed-out transactions every AbortInterval and expires idle
// transactional ids every ExpirationInterval (Kafka's "transaction-abort" and
// "transactionalId-expiration" scheduled tasks).
func (c *Coordinator) maintenanceLoop() {
	defer c.wg.Done()
	abort := time.NewTicker(c.cfg.AbortInterval)
	defer abort.Stop()
	expire := time.NewTicker(c.cfg.ExpirationInterval)
	defer expire.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-abort.C:
			c.abortTimedOut()
		case <-expire.C:
			c.expireTransactionalIDs()
		}
	}
}

// async runs work in a goroutine the coordinator owns and returns the wait that delivers
// its answer. The work goes on if the caller stops waiting (a written state must still be
// installed); a caller whose ctx ends gets COORDINATOR_NOT_AVAILABLE, which every client
// retries after looking the coordinator up again.
func (c *Coordinator) async(work func(ctx context.Context) kmsg.Response, timedOut func() kmsg.Response) (kmsg.Response, func(context.Context) kmsg.Response) {
	done := make(chan kmsg.Response, 1)
	c.mu.Lock()
	started := c.goLocked(func() { done <- work(c.ctx) })
	c.mu.Unlock()
	if !started {
		return timedOut(), nil
	}
	return nil, func(ctx context.Context) kmsg.Response {
		select {
		case r := <-done:
			return r
		case <-ctx.Done():
			return timedOut()
		}
	}
}
