package txn

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestPartitionForMatchesKafka checks the placement against String.hashCode values
// printed by a JVM (the same values the group package checks).
func TestPartitionForMatchesKafka(t *testing.T) {
	cases := []struct {
		id   string
		hash int32 // "...".hashCode() in Java
	}{
		{"hello", 99162322},
		{"my-group", -1906497762},
		{"", 0},
		{"ünïcödé-𝔊", 1204015437}, // UTF-16 units, including a surrogate pair
	}
	for _, c := range cases {
		want := (c.hash & 0x7fffffff) % 50
		if got := PartitionFor(c.id, 50); got != want {
			t.Errorf("PartitionFor(%q) = %d, want %d", c.id, got, want)
		}
	}
}

// TestCommitAndAbortWriteKafkaRecords runs a committed and then an aborted transaction and
// decodes what was written to __transaction_state: Empty at epoch 0, Ongoing with its
// partitions, PrepareCommit, CompleteCommit with none; the markers went to every partition
// with the coordinator epoch.
func TestCommitAndAbortWriteKafkaRecords(t *testing.T) {
	for _, commit := range []bool{true, false} {
		f := newFixture(t)
		pid, epoch := f.initOK("tx")
		if pid != 1000 || epoch != 0 {
			t.Fatalf("first InitProducerId: producer %d epoch %d, want 1000 and 0", pid, epoch)
		}
		f.addOK("tx", pid, epoch, a0, b2)
		f.addOK("tx", pid, epoch, a1)
		if r := f.end("tx", pid, epoch, commit, 3); r.ErrorCode != 0 {
			t.Fatalf("EndTxn: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		complete, prepare := stateCompleteCommit, statePrepareCommit
		if !commit {
			complete, prepare = stateCompleteAbort, statePrepareAbort
		}
		waitState(t, f.c, "tx", complete)

		recs := f.log.records(t)
		var states []state
		for _, r := range recs {
			if r.id != "tx" || r.value == nil || r.value.Version != 0 || r.value.ProducerID != pid || r.value.ProducerEpoch != 0 || r.value.TimeoutMillis != 10000 {
				t.Fatalf("record %+v", r)
			}
			states = append(states, state(r.value.State))
		}
		want := []state{stateEmpty, stateOngoing, stateOngoing, prepare, complete}
		if !slices.Equal(states, want) {
			t.Fatalf("states written %v, want %v", states, want)
		}
		topics := func(v *kmsg.TxnMetadataValue) map[string][]int32 {
			out := map[string][]int32{}
			for _, t := range v.Topics {
				out[t.Topic] = t.Partitions
			}
			return out
		}
		if got := topics(recs[3].value); !reflect.DeepEqual(got, map[string][]int32{"a": {0, 1}, "b": {2}}) {
			t.Fatalf("prepared partitions %v", got)
		}
		if len(recs[4].value.Topics) != 0 || len(recs[0].value.Topics) != 0 {
			t.Fatalf("Empty and Complete states carry partitions: %v / %v", recs[0].value.Topics, recs[4].value.Topics)
		}
		if recs[0].value.StartTimestamp != -1 || recs[1].value.StartTimestamp != f.clock.Now().UnixMilli() {
			t.Fatalf("start timestamps %d, %d", recs[0].value.StartTimestamp, recs[1].value.StartTimestamp)
		}
		ms := f.markers.markers()
		if len(ms) != 1 {
			t.Fatalf("%d marker requests, want 1", len(ms))
		}
		m := ms[0]
		if m.TransactionalID != "tx" || m.ProducerID != pid || m.ProducerEpoch != 0 || m.Commit != commit || m.CoordinatorEpoch != testCoordinatorEpoch ||
			!slices.Equal(m.Partitions, []TopicPartition{a0, a1, b2}) {
			t.Fatalf("marker %+v", m)
		}
	}
}

// TestInitProducerIDFencing: a second InitProducerId bumps the epoch and the first producer
// is fenced (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH for versions before it); KIP-360 lets
// the current producer bump its own epoch and fences a stale one; a retry of a bump whose
// answer was lost gets the same epoch; an exhausted epoch gets a new producer id.
func TestInitProducerIDFencing(t *testing.T) {
	f := newFixture(t)
	pid, e0 := f.initOK("tx")
	_, e1 := f.initOK("tx")
	if e1 != e0+1 {
		t.Fatalf("second InitProducerId epoch %d, want %d", e1, e0+1)
	}
	if code := f.add("tx", pid, e0, 3, a0)[a0]; code != kerr.ProducerFenced.Code {
		t.Fatalf("zombie AddPartitionsToTxn v3: %v", kerr.ErrorForCode(code))
	}
	if code := f.add("tx", pid, e0, 1, a0)[a0]; code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("zombie AddPartitionsToTxn v1: %v", kerr.ErrorForCode(code))
	}
	if code := f.add("tx", pid+1, e1, 3, a0)[a0]; code != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("AddPartitionsToTxn of another producer id: %v", kerr.ErrorForCode(code))
	}

	// KIP-360: the current producer bumps, a stale one is fenced.
	r := f.init("tx", 4, pid, e1)
	if r.ErrorCode != 0 || r.ProducerEpoch != e1+1 || r.ProducerID != pid {
		t.Fatalf("KIP-360 bump: %v epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
	}
	// The same request again (its answer lost): the same epoch, not another bump.
	if r := f.init("tx", 4, pid, e1); r.ErrorCode != 0 || r.ProducerEpoch != e1+1 {
		t.Fatalf("KIP-360 retry: %v epoch %d, want %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch, e1+1)
	}
	if r := f.init("tx", 4, pid, e0); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("KIP-360 stale epoch v4: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.init("tx", 3, pid, e0); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("KIP-360 stale epoch v3: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.init("tx", 4, 77, 3); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("KIP-360 unknown producer id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.init("tx", 4, pid, -1); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("producer id without epoch: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// Epoch exhaustion: the next InitProducerId rotates to a new producer id at epoch 0.
	f.c.mu.Lock()
	f.c.txns["tx"].epoch = 1<<15 - 2
	f.c.mu.Unlock()
	r = f.init("tx", 4, -1, -1)
	if r.ErrorCode != 0 || r.ProducerID == pid || r.ProducerEpoch != 0 {
		t.Fatalf("exhausted epoch: %v producer %d epoch %d, want a new producer id at 0", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
	}

	if r := f.init("", 4, -1, -1); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("empty transactional id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestInitProducerIDTimeout: a transaction timeout above transaction.max.timeout.ms (or not
// positive) is INVALID_TRANSACTION_TIMEOUT and writes nothing.
func TestInitProducerIDTimeout(t *testing.T) {
	f := newFixture(t)
	for _, ms := range []int32{0, -5, int32(time.Minute.Milliseconds()) + 1} {
		id := "tx"
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = 4
		req.TransactionalID, req.TransactionTimeoutMillis = &id, ms
		if r := do[*kmsg.InitProducerIDResponse](t, f.c, req); r.ErrorCode != kerr.InvalidTransactionTimeout.Code || r.ProducerID != -1 {
			t.Fatalf("timeout %d ms: %v producer %d", ms, kerr.ErrorForCode(r.ErrorCode), r.ProducerID)
		}
	}
	if n := len(f.log.records(t)); n != 0 {
		t.Fatalf("%d records written", n)
	}
}

// TestInitProducerIDAbortsOngoing: a new producer with the id of one in a transaction
// aborts that transaction at a bumped epoch, which fences the old producer, and is told
// CONCURRENT_TRANSACTIONS until the abort is complete; its retry then gets the next epoch.
func TestInitProducerIDAbortsOngoing(t *testing.T) {
	f := newFixture(t)
	f.markers.block = make(chan struct{})
	pid, e0 := f.initOK("tx")
	f.addOK("tx", pid, e0, a0)
	if r := f.init("tx", 4, -1, -1); r.ErrorCode != kerr.ConcurrentTransactions.Code {
		t.Fatalf("InitProducerId during a transaction: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.init("tx", 4, -1, -1); r.ErrorCode != kerr.ConcurrentTransactions.Code {
		t.Fatalf("InitProducerId while the abort's markers are written: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid, e0, true, 3); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("the old producer's commit: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	close(f.markers.block)
	waitState(t, f.c, "tx", stateCompleteAbort)
	ms := f.markers.markers()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != e0+1 {
		t.Fatalf("markers %+v, want one abort at epoch %d", ms, e0+1)
	}
	if _, e := f.initOK("tx"); e != e0+2 {
		t.Fatalf("retried InitProducerId epoch %d, want %d", e, e0+2)
	}
}

// TestEndTxnStaleEpoch: EndTxn with an older epoch is PRODUCER_FENCED (INVALID_PRODUCER_EPOCH
// before v2) and changes nothing; with an unknown producer id INVALID_PRODUCER_ID_MAPPING.
func TestEndTxnStaleEpoch(t *testing.T) {
	f := newFixture(t)
	pid, e0 := f.initOK("tx")
	_, e1 := f.initOK("tx")
	f.addOK("tx", pid, e1, a0)
	before := snapshot(f.c)
	written := len(f.log.records(t))
	if r := f.end("tx", pid, e0, true, 2); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("stale EndTxn v2: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid, e0, true, 1); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("stale EndTxn v1: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid+7, e1, true, 3); r.ErrorCode != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("EndTxn of an unknown producer id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("nobody", pid, e1, true, 3); r.ErrorCode != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("EndTxn of an unknown transactional id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if !reflect.DeepEqual(before, snapshot(f.c)) || len(f.log.records(t)) != written {
		t.Fatal("a refused EndTxn changed the state")
	}
	if len(f.markers.markers()) != 0 {
		t.Fatal("a refused EndTxn sent markers")
	}
}

// TestEndTxnRetry: EndTxn on an empty transaction is INVALID_TXN_STATE; repeated while
// its markers are written it is CONCURRENT_TRANSACTIONS, and after completion NONE for the
// same result and INVALID_TXN_STATE for the other; an abort while PrepareCommit is
// INVALID_TXN_STATE.
func TestEndTxnRetry(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("EndTxn with no partitions: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	f.markers.block = make(chan struct{})
	f.addOK("tx", pid, e, a0)
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e {
		t.Fatalf("commit: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != kerr.ConcurrentTransactions.Code {
		t.Fatalf("commit again while PrepareCommit: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid, e, false, 3); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("abort while PrepareCommit: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	close(f.markers.block)
	waitState(t, f.c, "tx", stateCompleteCommit)
	written := len(f.log.records(t))
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 {
		t.Fatalf("commit retried after completion: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := f.end("tx", pid, e, false, 3); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("abort after a completed commit: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if len(f.log.records(t)) != written || len(f.markers.markers()) != 1 {
		t.Fatal("a retried EndTxn wrote state or sent markers again")
	}
}

// TestConcurrentTransactions: while a transaction's markers are written, adding partitions
// and InitProducerId are CONCURRENT_TRANSACTIONS; after completion a new transaction starts.
func TestConcurrentTransactions(t *testing.T) {
	f := newFixture(t)
	f.markers.block = make(chan struct{})
	pid, e := f.initOK("tx")
	f.addOK("tx", pid, e, a0)
	if r := f.end("tx", pid, e, false, 3); r.ErrorCode != 0 {
		t.Fatalf("abort: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := f.add("tx", pid, e, 3, a1)[a1]; code != kerr.ConcurrentTransactions.Code {
		t.Fatalf("AddPartitionsToTxn while PrepareAbort: %v", kerr.ErrorForCode(code))
	}
	if r := f.init("tx", 4, -1, -1); r.ErrorCode != kerr.ConcurrentTransactions.Code {
		t.Fatalf("InitProducerId while PrepareAbort: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	close(f.markers.block)
	waitState(t, f.c, "tx", stateCompleteAbort)
	f.addOK("tx", pid, e, a1)
	if d := describeOne(t, f.c, "tx"); d.State != "Ongoing" || len(d.Topics) != 1 || !slices.Equal(d.Topics[0].Partitions, []int32{1}) {
		t.Fatalf("the next transaction: %+v", d)
	}
}

// TestTimeoutAbort: an Ongoing transaction older than its timeout is aborted by the
// coordinator at a bumped epoch; the producer that began it is fenced.
func TestTimeoutAbort(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	f.addOK("tx", pid, e, a0, a1)
	pid2, e2 := f.initOK("other")
	f.addOK("other", pid2, e2, b2)

	f.clock.Add(5 * time.Second) // within "tx"'s 10 s
	f.c.abortTimedOut()
	if d := describeOne(t, f.c, "tx"); d.State != "Ongoing" {
		t.Fatalf("aborted before its timeout: %s", d.State)
	}
	f.c.mu.Lock()
	f.c.txns["other"].startMs = f.clock.Now().UnixMilli() // "other" began later
	f.c.mu.Unlock()
	f.clock.Add(6 * time.Second)
	f.c.abortTimedOut()
	waitState(t, f.c, "tx", stateCompleteAbort)
	if d := describeOne(t, f.c, "other"); d.State != "Ongoing" {
		t.Fatalf("a transaction within its timeout was aborted: %s", d.State)
	}
	ms := f.markers.markers()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != e+1 || !slices.Equal(ms[0].Partitions, []TopicPartition{a0, a1}) {
		t.Fatalf("markers %+v", ms)
	}
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("commit of the timed-out producer: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := f.add("tx", pid, e, 3, a0)[a0]; code != kerr.ProducerFenced.Code {
		t.Fatalf("the timed-out producer adds a partition: %v", kerr.ErrorForCode(code))
	}
}

// TestLoadRebuildsAndCompletes: a coordinator loading the partition rebuilds the same
// table from the log, and finishes a PrepareCommit the previous one left (its markers sent
// again, CompleteCommit written); an Ongoing transaction stays Ongoing.
func TestLoadRebuildsAndCompletes(t *testing.T) {
	f := newFixture(t)
	pidDone, eDone := f.initOK("done")
	f.addOK("done", pidDone, eDone, a0)
	if r := f.end("done", pidDone, eDone, false, 3); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	waitState(t, f.c, "done", stateCompleteAbort)
	pidOn, eOn := f.initOK("ongoing")
	f.addOK("ongoing", pidOn, eOn, b2)
	f.initOK("empty")

	// "prep" reaches PrepareCommit and its coordinator goes away before any marker.
	f.markers.block = make(chan struct{})
	pid, e := f.initOK("prep")
	f.addOK("prep", pid, e, a1, b2)
	if r := f.end("prep", pid, e, true, 3); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	before := snapshot(f.c)
	f.c.Unload(0)
	if d := describeOne(t, f.c, "prep"); d.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("describe after Unload: %v", kerr.ErrorForCode(d.ErrorCode))
	}
	// The old coordinator's marker sending stopped with the Unload; markers stay blocked
	// so that the table is compared as loaded, before the completion changes it.
	c2 := f.newCoordinator()
	if err := c2.Load(context.Background(), 0, testCoordinatorEpoch+1, f.log); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(c2); !reflect.DeepEqual(got, before) {
		t.Fatalf("replayed table differs:\n got %+v\nwant %+v", got, before)
	}
	close(f.markers.block)
	waitState(t, c2, "prep", stateCompleteCommit)
	var resent []Marker
	for _, m := range f.markers.markers() {
		if m.TransactionalID == "prep" {
			resent = append(resent, m)
		}
	}
	if len(resent) != 1 || !resent[0].Commit || resent[0].CoordinatorEpoch != testCoordinatorEpoch+1 || !slices.Equal(resent[0].Partitions, []TopicPartition{a1, b2}) {
		t.Fatalf("markers after the load %+v", resent)
	}
	recs := f.log.records(t)
	if last := recs[len(recs)-1]; last.id != "prep" || state(last.value.State) != stateCompleteCommit {
		t.Fatalf("last record %s %v, want prep CompleteCommit", last.id, state(last.value.State))
	}
	if d := describeOne(t, c2, "ongoing"); d.State != "Ongoing" || d.ProducerID != pidOn {
		t.Fatalf("ongoing after the load: %+v", d)
	}
	// The new coordinator serves the producers of the old one.
	if r := (&fixture{t: t, c: c2}).end("ongoing", pidOn, eOn, true, 3); r.ErrorCode != 0 {
		t.Fatalf("commit through the new coordinator: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	waitState(t, c2, "ongoing", stateCompleteCommit)
}

// TestUnloadNotCoordinator: after Unload every request for the partition's ids is
// NOT_COORDINATOR; a write in flight when the partition moves answers NOT_COORDINATOR
// too and is not installed.
func TestUnloadNotCoordinator(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	f.c.Unload(0)
	if f.c.IsLoaded(0) {
		t.Fatal("still loaded")
	}
	if r := f.init("tx", 4, -1, -1); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := f.add("tx", pid, e, 3, a0)[a0]; code != kerr.NotCoordinator.Code {
		t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(code))
	}
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// A write racing a leadership change.
	f2 := newFixture(t)
	pid, e = f2.initOK("tx")
	gate := &gatedLog{memLog: f2.log, entered: make(chan struct{}), release: make(chan struct{})}
	f2.c.Unload(0)
	if err := f2.c.Load(context.Background(), 0, 9, gate); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx", pid, e
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "a", Partitions: []int32{0}}}
	_, wait := f2.c.Handle(context.Background(), req)
	<-gate.entered
	f2.c.Unload(0)
	if err := f2.c.Load(context.Background(), 0, 10, f2.log); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	resp := wait(context.Background()).(*kmsg.AddPartitionsToTxnResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotCoordinator.Code {
		t.Fatalf("a write that outlived its coordinator epoch: %v", kerr.ErrorForCode(code))
	}
}

// gatedLog holds its first Append until release is closed.
type gatedLog struct {
	*memLog
	entered, release chan struct{}
	once             bool
}

func (g *gatedLog) Append(ctx context.Context, batch []byte) (int64, error) {
	if !g.once {
		g.once = true
		close(g.entered)
		<-g.release
	}
	return g.memLog.Append(ctx, batch)
}

// TestFailingAppendLeavesStateUnchanged: when the state cannot be written the id keeps its
// state, nothing is sent, and the answer is Kafka's for the failure: NOT_ENOUGH_REPLICAS
// and timeouts become COORDINATOR_NOT_AVAILABLE, leadership lost NOT_COORDINATOR.
func TestFailingAppendLeavesStateUnchanged(t *testing.T) {
	cases := []struct {
		err  error
		want *kerr.Error
	}{
		{kerr.NotEnoughReplicas, kerr.CoordinatorNotAvailable},
		{kerr.RequestTimedOut, kerr.CoordinatorNotAvailable},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator},
		{kerr.MessageTooLarge, kerr.UnknownServerError},
		{errors.New("disk on fire"), kerr.CoordinatorNotAvailable},
	}
	for _, tc := range cases {
		f := newFixture(t)
		pid, e := f.initOK("tx")
		f.addOK("tx", pid, e, a0)
		before := snapshot(f.c)
		f.log.setFailure(tc.err)
		if code := f.add("tx", pid, e, 3, a1)[a1]; code != tc.want.Code {
			t.Fatalf("%v: AddPartitionsToTxn %v, want %v", tc.err, kerr.ErrorForCode(code), tc.want)
		}
		if r := f.end("tx", pid, e, true, 3); r.ErrorCode != tc.want.Code {
			t.Fatalf("%v: EndTxn %v, want %v", tc.err, kerr.ErrorForCode(r.ErrorCode), tc.want)
		}
		if r := f.init("tx", 4, -1, -1); r.ErrorCode != tc.want.Code {
			t.Fatalf("%v: InitProducerId %v, want %v", tc.err, kerr.ErrorForCode(r.ErrorCode), tc.want)
		}
		if r := f.init("fresh", 4, -1, -1); r.ErrorCode != tc.want.Code {
			t.Fatalf("%v: InitProducerId of a new id %v, want %v", tc.err, kerr.ErrorForCode(r.ErrorCode), tc.want)
		}
		if got := snapshot(f.c); !reflect.DeepEqual(got, before) {
			t.Fatalf("%v: state changed:\n got %+v\nwant %+v", tc.err, got, before)
		}
		if len(f.markers.markers()) != 0 {
			t.Fatalf("%v: markers sent", tc.err)
		}
		// Once the log takes writes again, the same producer goes on.
		f.log.setFailure(nil)
		if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 {
			t.Fatalf("%v: EndTxn after recovery: %v", tc.err, kerr.ErrorForCode(r.ErrorCode))
		}
		waitState(t, f.c, "tx", stateCompleteCommit)
	}
}

// TestVerifyOnly: AddPartitionsToTxn v4 with VerifyOnly (KIP-890 part 1) answers, per
// partition, NONE when it is in the producer's ongoing transaction and
// TRANSACTION_ABORTABLE when not, writing nothing; the producer errors apply to all
// partitions; a batch mixes verification and adds.
func TestVerifyOnly(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	f.addOK("tx", pid, e, a0)
	pid2, e2 := f.initOK("tx2")
	written := len(f.log.records(t))

	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	txn := func(id string, pid int64, epoch int16, verify bool, tps ...TopicPartition) kmsg.AddPartitionsToTxnRequestTransaction {
		t := kmsg.NewAddPartitionsToTxnRequestTransaction()
		t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly = id, pid, epoch, verify
		for _, tp := range tps {
			t.Topics = append(t.Topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
		}
		return t
	}
	req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{
		txn("tx", pid, e, true, a0, a1),
		txn("tx", pid, e+1, true, a0),
		txn("tx", pid+50, e, true, a0),
		txn("ghost", 1, 0, true, a0),
		txn("tx2", pid2, e2, false, b2),
		txn("", 1, 0, true, a0),
	}
	resp := do[*kmsg.AddPartitionsToTxnResponse](t, f.c, req)
	got := map[string]map[TopicPartition]int16{}
	for i, rt := range resp.Transactions {
		key := rt.TransactionalID + "#" + string(rune('0'+i))
		got[key] = map[TopicPartition]int16{}
		for _, tt := range rt.Topics {
			for _, p := range tt.Partitions {
				got[key][TopicPartition{tt.Topic, p.Partition}] = p.ErrorCode
			}
		}
	}
	want := map[string]map[TopicPartition]int16{
		"tx#0":    {a0: 0, a1: kerr.TransactionAbortable.Code},
		"tx#1":    {a0: kerr.ProducerFenced.Code},
		"tx#2":    {a0: kerr.InvalidProducerIDMapping.Code},
		"ghost#3": {a0: kerr.InvalidProducerIDMapping.Code},
		"tx2#4":   {b2: 0},
		"#5":      {a0: kerr.InvalidRequest.Code},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("answers\n got %v\nwant %v", got, want)
	}
	if n := len(f.log.records(t)); n != written+1 {
		t.Fatalf("%d records written, want 1 (tx2's add only)", n-written)
	}
	if d := describeOne(t, f.c, "tx"); len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 1 {
		t.Fatalf("verification added partitions: %+v", d.Topics)
	}

	// While the markers are written, verification is CONCURRENT_TRANSACTIONS.
	f.markers.block = make(chan struct{})
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	req.Transactions = req.Transactions[:1]
	resp = do[*kmsg.AddPartitionsToTxnResponse](t, f.c, req)
	if code := resp.Transactions[0].Topics[0].Partitions[0].ErrorCode; code != kerr.ConcurrentTransactions.Code {
		t.Fatalf("verification while PrepareCommit: %v", kerr.ErrorForCode(code))
	}
	close(f.markers.block)
}

// TestUnknownPartition: a partition that does not exist fails the whole add: it gets
// UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED, and nothing is written.
func TestUnknownPartition(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	written := len(f.log.records(t))
	missing := TopicPartition{"a", 9}
	codes := f.add("tx", pid, e, 3, a0, missing, b2)
	want := map[TopicPartition]int16{a0: kerr.OperationNotAttempted.Code, missing: kerr.UnknownTopicOrPartition.Code, b2: kerr.OperationNotAttempted.Code}
	if !maps.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if len(f.log.records(t)) != written {
		t.Fatal("a refused add wrote state")
	}
}

// TestAddOffsetsToTxn adds the group's __consumer_offsets partition.
func TestAddOffsetsToTxn(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("tx")
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = "tx", pid, e, "g"
	if r := do[*kmsg.AddOffsetsToTxnResponse](t, f.c, req); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	d := describeOne(t, f.c, "tx")
	if d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics[0].Topic != "__consumer_offsets" || d.Topics[0].Partitions[0] != PartitionFor("g", 3) {
		t.Fatalf("after AddOffsetsToTxn: %+v", d)
	}
	req.ProducerEpoch = e - 1
	req.Version = 1
	if r := do[*kmsg.AddOffsetsToTxnResponse](t, f.c, req); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("stale AddOffsetsToTxn v1: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// TestMarkerRetries: a retriable marker error is retried until it succeeds; a partition
// that no longer exists is dropped; the transaction completes.
func TestMarkerRetries(t *testing.T) {
	f := newFixture(t)
	f.markers.fail[a0] = []error{kerr.NotLeaderForPartition, kerr.RequestTimedOut}
	f.markers.fail[a1] = []error{kerr.UnknownTopicOrPartition}
	pid, e := f.initOK("tx")
	f.addOK("tx", pid, e, a0, a1, b2)
	f.env.mu.Lock()
	f.env.deleted = map[TopicPartition]bool{b2: true}
	f.env.mu.Unlock()
	if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	waitState(t, f.c, "tx", stateCompleteCommit)
	var got [][]TopicPartition
	for _, m := range f.markers.markers() {
		got = append(got, m.Partitions)
	}
	want := [][]TopicPartition{{a0, a1}, {a0}, {a0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("marker requests %v, want %v", got, want)
	}
}

// TestTransactionalIDExpiration: an id idle past transactional.id.expiration.ms in a
// completed state is tombstoned and forgotten; an ongoing one is kept.
func TestTransactionalIDExpiration(t *testing.T) {
	f := newFixture(t)
	f.initOK("idle")
	pid, e := f.initOK("busy")
	f.addOK("busy", pid, e, a0)
	f.clock.Add(25 * time.Hour)
	f.c.expireTransactionalIDs()
	if d := describeOne(t, f.c, "idle"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("expired id described: %v", kerr.ErrorForCode(d.ErrorCode))
	}
	if d := describeOne(t, f.c, "busy"); d.State != "Ongoing" {
		t.Fatalf("ongoing id: %+v", d)
	}
	recs := f.log.records(t)
	if last := recs[len(recs)-1]; last.id != "idle" || last.value != nil {
		t.Fatalf("last record %+v, want a tombstone of idle", last)
	}
	c2 := f.newCoordinator()
	if err := c2.Load(context.Background(), 0, 6, f.log); err != nil {
		t.Fatal(err)
	}
	if _, ok := snapshot(c2)["idle"]; ok {
		t.Fatal("the tombstoned id came back on replay")
	}
}

// TestDescribeAndList covers DescribeTransactions and ListTransactions' filters.
func TestDescribeAndList(t *testing.T) {
	f := newFixture(t)
	pid, e := f.initOK("one")
	f.addOK("one", pid, e, b2, a1)
	pid2, _ := f.initOK("two")
	d := describeOne(t, f.c, "one")
	if d.ErrorCode != 0 || d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != e || d.TimeoutMillis != 10000 ||
		d.StartTimestamp != f.clock.Now().UnixMilli() || len(d.Topics) != 2 || d.Topics[0].Topic != "a" || d.Topics[1].Topic != "b" {
		t.Fatalf("describe: %+v", d)
	}
	if d := describeOne(t, f.c, "nobody"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("unknown id: %v", kerr.ErrorForCode(d.ErrorCode))
	}
	if d := describeOne(t, f.c, ""); d.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("empty id: %v", kerr.ErrorForCode(d.ErrorCode))
	}

	list := func(version int16, states []string, pids []int64, duration int64) *kmsg.ListTransactionsResponse {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version, req.StateFilters, req.ProducerIDFilters, req.DurationFilterMillis = version, states, pids, duration
		return do[*kmsg.ListTransactionsResponse](t, f.c, req)
	}
	ids := func(r *kmsg.ListTransactionsResponse) []string {
		var out []string
		for _, s := range r.TransactionStates {
			out = append(out, s.TransactionalID+"="+s.TransactionState)
		}
		return out
	}
	if got := ids(list(0, nil, nil, -1)); !slices.Equal(got, []string{"one=Ongoing", "two=Empty"}) {
		t.Fatalf("list all: %v", got)
	}
	if got := ids(list(0, []string{"Empty"}, nil, -1)); !slices.Equal(got, []string{"two=Empty"}) {
		t.Fatalf("list Empty: %v", got)
	}
	if got := ids(list(0, nil, []int64{pid2}, -1)); !slices.Equal(got, []string{"two=Empty"}) {
		t.Fatalf("list by producer id: %v", got)
	}
	r := list(0, []string{"Ongoing", "Bogus"}, nil, -1)
	if got := ids(r); !slices.Equal(got, []string{"one=Ongoing"}) || !slices.Equal(r.UnknownStateFilters, []string{"Bogus"}) {
		t.Fatalf("unknown state filter: %v %v", got, r.UnknownStateFilters)
	}
	f.clock.Add(3 * time.Second)
	if got := ids(list(1, []string{"Ongoing"}, nil, 5000)); len(got) != 0 {
		t.Fatalf("running longer than 5 s: %v", got)
	}
	if got := ids(list(1, []string{"Ongoing"}, nil, 2000)); !slices.Equal(got, []string{"one=Ongoing"}) {
		t.Fatalf("running longer than 2 s: %v", got)
	}
}

// TestLoadInProgress: while a partition loads its ids get COORDINATOR_LOAD_IN_PROGRESS.
func TestLoadInProgress(t *testing.T) {
	f := newFixture(t)
	f.initOK("tx")
	c2 := f.newCoordinator()
	blocking := &blockingReadLog{memLog: f.log, release: make(chan struct{}), entered: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- c2.Load(context.Background(), 0, 7, blocking) }()
	<-blocking.entered
	if d := describeOne(t, c2, "tx"); d.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("describe while loading: %v", kerr.ErrorForCode(d.ErrorCode))
	}
	req := kmsg.NewPtrListTransactionsRequest()
	if r := do[*kmsg.ListTransactionsResponse](t, c2, req); r.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("list while loading: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	close(blocking.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := describeOne(t, c2, "tx"); d.ErrorCode != 0 || d.State != "Empty" {
		t.Fatalf("after the load: %+v", d)
	}
}

// blockingReadLog holds its first read until release is closed.
type blockingReadLog struct {
	*memLog
	entered, release chan struct{}
	once             bool
}

func (b *blockingReadLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	if !b.once {
		b.once = true
		close(b.entered)
		<-b.release
	}
	return b.memLog.ReadBytes(offset, maxBytes)
}

// TestMarkerFencedStops: a partition answering that the producer epoch or the coordinator
// epoch moved on (TransactionMarkerRequestCompletionHandler's INVALID_PRODUCER_EPOCH,
// TRANSACTION_COORDINATOR_FENCED) stops the completion: a newer coordinator owns it, so
// this one writes no Complete state.
func TestMarkerFencedStops(t *testing.T) {
	for _, fenced := range []error{kerr.TransactionCoordinatorFenced, kerr.InvalidProducerEpoch} {
		f := newFixture(t)
		f.markers.fail[a0] = []error{fenced}
		pid, e := f.initOK("tx")
		f.addOK("tx", pid, e, a0)
		if r := f.end("tx", pid, e, true, 3); r.ErrorCode != 0 {
			t.Fatal(kerr.ErrorForCode(r.ErrorCode))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			f.c.mu.Lock()
			done := !f.c.txns["tx"].completing
			f.c.mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("completion still running")
			}
			time.Sleep(time.Millisecond)
		}
		if d := describeOne(t, f.c, "tx"); d.State != "PrepareCommit" {
			t.Fatalf("%v: state %s, want PrepareCommit left for the next coordinator", fenced, d.State)
		}
		if n := len(f.markers.markers()); n != 1 {
			t.Fatalf("%v: %d marker requests, want 1", fenced, n)
		}
	}
}

// TestCloseStopsMarkerRetries: Close returns while a marker is being retried forever.
func TestCloseStopsMarkerRetries(t *testing.T) {
	f := newFixture(t)
	for range 1000 {
		f.markers.fail[a0] = append(f.markers.fail[a0], kerr.NotLeaderForPartition)
	}
	pid, e := f.initOK("tx")
	f.addOK("tx", pid, e, a0)
	if r := f.end("tx", pid, e, false, 3); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	for len(f.markers.markers()) < 2 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { f.c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the marker retries")
	}
	if r := f.init("tx", 4, -1, -1); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("InitProducerId after Close: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}
