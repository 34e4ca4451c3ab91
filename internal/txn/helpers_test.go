package txn

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// memLog is a __transaction_state partition in memory: real record batches, given their
// offsets as the journal gives them. failWith makes appends fail (and write nothing).
type memLog struct {
	mu       sync.Mutex
	batches  [][]byte
	next     int64
	failWith error
	appended chan struct{} // optional: signalled after every append
}

func (l *memLog) Append(ctx context.Context, batch []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failWith != nil {
		return 0, l.failWith
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	h, err := record.Validate(batch)
	if err != nil {
		return 0, err
	}
	b := append([]byte(nil), batch...)
	base := l.next
	record.SetBaseOffset(b, base)
	l.batches = append(l.batches, b)
	l.next = base + int64(h.LastOffsetDelta) + 1
	if l.appended != nil {
		select {
		case l.appended <- struct{}{}:
		default:
		}
	}
	return base, nil
}

func (l *memLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.batches {
		h, _ := record.ParseHeader(b)
		if h.LastOffset() < offset {
			continue
		}
		if len(out) > 0 && int64(len(out)+len(b)) > maxBytes {
			break
		}
		out = append(out, b...)
	}
	return out, nil
}

func (l *memLog) LogStartOffset() int64 { return 0 }
func (l *memLog) LogEndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

func (l *memLog) setFailure(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failWith = err
}

// writtenState is one decoded record of the log; value nil for a tombstone.
type writtenState struct {
	id    string
	value *kmsg.TxnMetadataValue
}

// records decodes every record of the log back with kmsg.
func (l *memLog) records(t *testing.T) []writtenState {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []writtenState
	for _, b := range l.batches {
		recs, err := record.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var k kmsg.TxnMetadataKey
			if err := k.ReadFrom(r.Key); err != nil {
				t.Fatalf("key: %v", err)
			}
			if k.Version != 0 {
				t.Fatalf("key version %d, Kafka writes 0", k.Version)
			}
			w := writtenState{id: k.TransactionalID}
			if r.Value != nil {
				v := new(kmsg.TxnMetadataValue)
				if err := v.ReadFrom(r.Value); err != nil {
					t.Fatalf("value: %v", err)
				}
				w.value = v
			}
			out = append(out, w)
		}
	}
	return out
}

// recMarkers records the markers asked for; fail gives a partition's answers in turn
// (nil when exhausted), and block, when set, holds every call until it is closed.
type recMarkers struct {
	mu    sync.Mutex
	calls []Marker
	fail  map[TopicPartition][]error
	block chan struct{}
}

func (r *recMarkers) WriteMarkers(ctx context.Context, m Marker) map[TopicPartition]error {
	r.mu.Lock()
	block := r.block
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return map[TopicPartition]error{}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.Partitions = append([]TopicPartition(nil), m.Partitions...)
	r.calls = append(r.calls, m)
	out := map[TopicPartition]error{}
	for _, tp := range m.Partitions {
		var err error
		if errs := r.fail[tp]; len(errs) > 0 {
			err, r.fail[tp] = errs[0], errs[1:]
		}
		out[tp] = err
	}
	return out
}

func (r *recMarkers) markers() []Marker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Marker(nil), r.calls...)
}

// testEnv hands out producer ids from 1000 and knows topics "a" and "b" of 3 partitions.
type testEnv struct {
	mu      sync.Mutex
	nextPID int64
	deleted map[TopicPartition]bool
}

func (e *testEnv) AllocateProducerID(context.Context) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextPID++
	return 999 + e.nextPID, nil
}

func (e *testEnv) PartitionExists(topic string, partition int32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deleted[TopicPartition{topic, partition}] {
		return false
	}
	return (topic == "a" || topic == "b" || topic == "__consumer_offsets") && partition >= 0 && partition < 3
}

func (e *testEnv) OffsetsPartition(group string) int32 { return PartitionFor(group, 3) }

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is a coordinator with one __transaction_state partition (Partitions: 1, so every
// id lives on partition 0) loaded at coordinator epoch 5.
type fixture struct {
	t       *testing.T
	c       *Coordinator
	log     *memLog
	markers *recMarkers
	env     *testEnv
	clock   *fakeClock
}

const testCoordinatorEpoch = 5

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, log: &memLog{}, markers: &recMarkers{fail: map[TopicPartition][]error{}}, env: &testEnv{},
		clock: &fakeClock{now: time.Unix(1700000000, 0)}}
	f.c = f.newCoordinator()
	if err := f.c.Load(context.Background(), 0, testCoordinatorEpoch, f.log); err != nil {
		t.Fatal(err)
	}
	return f
}

// newCoordinator is another coordinator over the same log, markers, env and clock.
func (f *fixture) newCoordinator() *Coordinator {
	c := NewCoordinator(Config{Partitions: 1, MaxTimeout: time.Minute, AbortInterval: time.Hour, IDExpiration: 24 * time.Hour,
		Now: f.clock.Now, Logger: quiet()}, f.env, f.markers)
	f.t.Cleanup(func() { c.Close() })
	return c
}

// do sends a request and waits for its answer.
func do[R kmsg.Response](t *testing.T, c *Coordinator, req kmsg.Request) R {
	t.Helper()
	resp, wait := c.Handle(context.Background(), req)
	if wait != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp = wait(ctx)
	}
	r, ok := resp.(R)
	if !ok {
		t.Fatalf("answer %T to %T", resp, req)
	}
	return r
}

func (f *fixture) init(id string, version int16, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	f.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 10000
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return do[*kmsg.InitProducerIDResponse](f.t, f.c, req)
}

// initOK initialises a producer and returns its id and epoch.
func (f *fixture) initOK(id string) (int64, int16) {
	f.t.Helper()
	r := f.init(id, 4, -1, -1)
	if r.ErrorCode != 0 {
		f.t.Fatalf("InitProducerId(%s): %v", id, kerr.ErrorForCode(r.ErrorCode))
	}
	return r.ProducerID, r.ProducerEpoch
}

// add sends AddPartitionsToTxn (v3) and returns each partition's code.
func (f *fixture) add(id string, pid int64, epoch int16, version int16, tps ...TopicPartition) map[TopicPartition]int16 {
	f.t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	for _, tp := range tps {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
		req.Topics = append(req.Topics, rt)
	}
	resp := do[*kmsg.AddPartitionsToTxnResponse](f.t, f.c, req)
	out := map[TopicPartition]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[TopicPartition{t.Topic, p.Partition}] = p.ErrorCode
		}
	}
	if len(out) != len(tps) {
		f.t.Fatalf("AddPartitionsToTxn answered %d partitions of %d", len(out), len(tps))
	}
	return out
}

// addOK adds partitions and fails the test unless every one is added.
func (f *fixture) addOK(id string, pid int64, epoch int16, tps ...TopicPartition) {
	f.t.Helper()
	for tp, code := range f.add(id, pid, epoch, 3, tps...) {
		if code != 0 {
			f.t.Fatalf("AddPartitionsToTxn %v: %v", tp, kerr.ErrorForCode(code))
		}
	}
}

func (f *fixture) end(id string, pid int64, epoch int16, commit bool, version int16) *kmsg.EndTxnResponse {
	f.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return do[*kmsg.EndTxnResponse](f.t, f.c, req)
}

// describeOne is DescribeTransactions of one id.
func describeOne(t *testing.T, c *Coordinator, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	return do[*kmsg.DescribeTransactionsResponse](t, c, req).TransactionStates[0]
}

// waitState polls until id reaches a state with no write or markers in flight.
func waitState(t *testing.T, c *Coordinator, id string, want state) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		m := c.txns[id]
		done := m != nil && m.state == want && m.pending == nil && !m.completing
		got := "absent"
		if m != nil {
			got = m.state.String()
		}
		c.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s", id, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// snapshot is the coordinator's table, without the fields Kafka keeps only in memory.
func snapshot(c *Coordinator) map[string]txnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]txnState{}
	for id, m := range c.txns {
		s := m.clone()
		s.lastEpoch, s.previousProducerID = 0, 0
		out[id] = s
	}
	return out
}

var (
	a0 = TopicPartition{"a", 0}
	a1 = TopicPartition{"a", 1}
	b2 = TopicPartition{"b", 2}
)
