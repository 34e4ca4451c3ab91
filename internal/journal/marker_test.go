package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

// epochTxnBatch is a batch of n records of producer pid's transaction at epoch.
func epochTxnBatch(t testing.TB, pid int64, epoch int16, seq int32, n int, ts int64) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte{byte(seq), byte(i)}}
	}
	b, err := record.Build(record.Header{Attributes: attrTransactional, BaseTimestamp: ts, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendMarker(l *Log, pid int64, epoch int16, coordinatorEpoch int32, commit bool) (AppendResult, error) {
	return l.WaitMarker(context.Background(), record.EndTxnMarker{ProducerID: pid, ProducerEpoch: epoch, CoordinatorEpoch: coordinatorEpoch, Commit: commit}, 0, AppendOptions{})
}

// TestAppendMarkerRefusals: a marker with an older producer epoch or from an older
// coordinator is refused with Kafka's errors and changes nothing; an accepted one ends the
// transaction and records the coordinator epoch; a marker for a producer with no open
// transaction is written.
func TestAppendMarkerRefusals(t *testing.T) {
	l := openLog(t, t.TempDir(), quietConfig())
	defer l.Close()
	mustAppend(t, l, epochTxnBatch(t, 7, 2, 0, 2, 1000)) // 0-1
	if _, err := appendMarker(l, 7, 2, 5, true); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, epochTxnBatch(t, 7, 2, 2, 1, 1000)) // 3: a second transaction opens
	before, _ := l.Producer(7)
	end := l.LogEndOffset()
	cases := []struct {
		name             string
		epoch            int16
		coordinatorEpoch int32
		want             error
	}{
		{"older producer epoch", 1, 5, ErrInvalidProducerEpoch},
		{"older coordinator epoch", 2, 4, ErrTransactionCoordinatorFenced},
	}
	for _, c := range cases {
		if _, err := appendMarker(l, 7, c.epoch, c.coordinatorEpoch, false); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		after, _ := l.Producer(7)
		if l.LogEndOffset() != end || after != before || l.FirstUnstableOffset() != 3 || !l.HasOpenTransaction(7) {
			t.Fatalf("%s changed the log: end %d (was %d), state %+v (was %+v), first unstable %d", c.name, l.LogEndOffset(), end, after, before, l.FirstUnstableOffset())
		}
	}
	if before.TxnStartOffset != 3 || before.CoordinatorEpoch != 5 || before.LastSequence != 2 || before.LastTimestamp != 1000 {
		t.Fatalf("producer 7 with a transaction open at 3: %+v", before)
	}
	// Inside its transaction a producer writes transactionally only.
	if _, err := l.Append(context.Background(), idemBatch(t, 7, 2, 3, 1), AppendOptions{}); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("non-transactional batch inside an open transaction: %v", err)
	}
	// Under transaction version 2 the coordinator bumps the epoch for every marker: one at
	// the producer's epoch while its transaction is open is late.
	if _, err := l.WaitMarker(context.Background(), record.EndTxnMarker{ProducerID: 7, ProducerEpoch: 2, CoordinatorEpoch: 5}, 2, AppendOptions{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("TV2 marker at the producer's epoch: %v", err)
	}
	if after, _ := l.Producer(7); l.LogEndOffset() != end || after != before {
		t.Fatalf("refusals changed the log: end %d (was %d), state %+v", l.LogEndOffset(), end, after)
	}
	// A transactional batch of an older epoch is fenced too.
	if _, err := l.Append(context.Background(), epochTxnBatch(t, 7, 1, 3, 1, 1000), AppendOptions{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("batch of an older epoch: %v", err)
	}
	// A newer coordinator and a bumped epoch (the coordinator aborting for a new producer
	// instance) are taken.
	res, err := appendMarker(l, 7, 3, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := l.Producer(7)
	if st.Epoch != 3 || st.CoordinatorEpoch != 6 || st.TxnStartOffset != -1 || l.HasOpenTransaction(7) || l.FirstUnstableOffset() != l.LogEndOffset() {
		t.Fatalf("after ABORT at %d: %+v", res.BaseOffset, st)
	}
	if got := l.AbortedTransactions(0, l.LogEndOffset()); len(got) != 1 || got[0].FirstOffset != 3 || got[0].LastOffset != res.BaseOffset {
		t.Fatalf("aborted transactions: %+v", got)
	}
	// A TV2 marker repeated at the producer's epoch with no transaction open is a retry of
	// one already written, and is written again.
	if _, err := l.WaitMarker(context.Background(), record.EndTxnMarker{ProducerID: 7, ProducerEpoch: 3, CoordinatorEpoch: 6}, 2, AppendOptions{}); err != nil {
		t.Fatalf("TV2 marker retry: %v", err)
	}
	// A producer this log never saw gets its marker written.
	if _, err := appendMarker(l, 8, 0, 1, true); err != nil {
		t.Fatalf("marker for an unknown producer: %v", err)
	}
	if st, ok := l.Producer(8); !ok || st.CoordinatorEpoch != 1 || st.LastSequence != -1 {
		t.Fatalf("producer 8 after its marker: %+v %v", st, ok)
	}
	hs, _ := readAll(t, l, 0)
	if last := hs[len(hs)-1]; !last.IsControl() || last.ProducerID != 8 {
		t.Fatalf("last batch %+v, want producer 8's marker", last)
	}
}

// TestProducerSnapshotRoundTrip: version 3 keeps the coordinator epoch, the last timestamp
// and producers with no batches; versions 1 and 2 still read.
func TestProducerSnapshotRoundTrip(t *testing.T) {
	table := producerTable{
		1: {epoch: 3, coordinatorEpoch: 9, lastTimestamp: 12345, batches: []batchMeta{{firstSeq: 0, lastSeq: 4, firstOffset: 10, lastOffset: 14}}},
		2: {epoch: 1, coordinatorEpoch: 2, lastTimestamp: 777}, // known from a marker only
	}
	txns := openTxns{1: 10}
	gotTable, gotTxns, err := decodeProducers(table.encode(txns))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotTable, table) || !reflect.DeepEqual(gotTxns, txns) {
		t.Fatalf("round trip: %+v %+v", gotTable, gotTxns)
	}
	// Version 2, as written before coordinator epochs: producer 5 at epoch 4 with one batch,
	// and producer 5's transaction open from offset 20.
	v2 := []byte{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 4, 1,
		0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 21,
		0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 20}
	gotTable, gotTxns, err = decodeProducers(v2)
	if err != nil {
		t.Fatal(err)
	}
	want := producerTable{5: {epoch: 4, coordinatorEpoch: -1, lastTimestamp: -1, batches: []batchMeta{{0, 1, 20, 21}}}}
	if !reflect.DeepEqual(gotTable, want) || !reflect.DeepEqual(gotTxns, openTxns{5: 20}) {
		t.Fatalf("version 2: %+v %+v", gotTable, gotTxns)
	}
	// Version 1 is version 2 without the transactions.
	gotTable, _, err = decodeProducers(append([]byte{1}, v2[1:40]...))
	if err != nil || !reflect.DeepEqual(gotTable, want) {
		t.Fatalf("version 1: %+v %v", gotTable, err)
	}
	for _, bad := range [][]byte{{4, 0, 0, 0, 0, 0, 0, 0, 0}, table.encode(txns)[:30]} {
		if _, _, err := decodeProducers(bad); err == nil {
			t.Fatalf("decoded malformed snapshot %v", bad)
		}
	}
}

// TestMarkerStateRecovery: the coordinator epoch a marker set survives a reopen from the
// producer snapshot and, with the snapshots gone, from the log alone.
func TestMarkerStateRecovery(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig())
	mustAppend(t, l, epochTxnBatch(t, 7, 0, 0, 2, 1000))
	if _, err := appendMarker(l, 7, 0, 4, false); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, epochTxnBatch(t, 7, 0, 2, 1, 1000))
	want, _ := l.Producer(7)
	l.Close()
	for _, fromLog := range []bool{false, true} {
		if fromLog {
			snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotExt))
			if len(snaps) == 0 {
				t.Fatal("a clean close wrote no producer snapshot")
			}
			for _, s := range snaps {
				os.Remove(s)
			}
		}
		l = openLog(t, dir, quietConfig())
		got, ok := l.Producer(7)
		if !ok || got != want || got.CoordinatorEpoch != 4 || got.TxnStartOffset != 3 {
			t.Fatalf("reopened (from the log alone: %v): %+v, want %+v", fromLog, got, want)
		}
		if _, err := appendMarker(l, 7, 0, 3, true); !errors.Is(err, ErrTransactionCoordinatorFenced) {
			t.Fatalf("reopened (from the log alone: %v): a marker from coordinator epoch 3 got %v", fromLog, err)
		}
		l.Close()
	}
}

// TestExpireProducers: a producer idle for producer.id.expiration.ms is forgotten, one with
// an open transaction is kept however idle.
func TestExpireProducers(t *testing.T) {
	now := time.UnixMilli(10_000)
	cfg := quietConfig()
	cfg.Now = func() time.Time { return now }
	cfg.ProducerIDExpiration = time.Second
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	mustAppend(t, l, idemBatch(t, 1, 0, 0, 1))        // timestamp 1: idle
	mustAppend(t, l, epochTxnBatch(t, 2, 0, 0, 1, 1)) // idle, but its transaction is open
	recs := []record.Record{{Value: []byte("x")}}
	b, _ := record.Build(record.Header{BaseTimestamp: 9_600, ProducerID: 4, BaseSequence: 0}, recs, record.CodecNone)
	mustAppend(t, l, b) // 400 ms ago
	ids := func() []int64 {
		var out []int64
		for _, p := range l.Producers() {
			out = append(out, p.ProducerID)
		}
		return out
	}
	if n := l.ExpireProducers(); n != 1 || !reflect.DeepEqual(ids(), []int64{2, 4}) {
		t.Fatalf("expired %d, left %v; want 1 and [2 4]", n, ids())
	}
	now = time.UnixMilli(10_600)
	if n := l.ExpireProducers(); n != 1 || !reflect.DeepEqual(ids(), []int64{2}) {
		t.Fatalf("expired %d, left %v; want 1 and [2]", n, ids())
	}
}

// TestVerificationGuard (KIP-890 part 1): an append that opens a transaction under required
// verification must carry the producer's current guard; a marker written while the
// coordinator was being asked withdraws it, so the late batch opens no transaction.
func TestVerificationGuard(t *testing.T) {
	l := openLog(t, t.TempDir(), quietConfig())
	defer l.Close()
	appendVerified := func(v Verification, seq int32) error {
		_, err := l.Append(context.Background(), epochTxnBatch(t, 7, 0, seq, 1, 1000), AppendOptions{Verification: v})
		return err
	}
	stale := l.StartVerification(7)
	if _, err := appendMarker(l, 7, 0, 1, false); err != nil { // the transaction ends meanwhile
		t.Fatal(err)
	}
	if err := appendVerified(Verification{Required: true, Guard: stale}, 0); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("batch verified before the marker: %v", err)
	}
	replaced := l.StartVerification(7)
	current := l.StartVerification(7)
	if err := appendVerified(Verification{Required: true, Guard: replaced}, 0); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("batch with a replaced guard: %v", err)
	}
	if err := appendVerified(Verification{Required: true}, 0); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("batch with no guard: %v", err)
	}
	if end := l.LogEndOffset(); end != 1 || l.HasOpenTransaction(7) {
		t.Fatalf("refused batches were written: log end %d", end)
	}
	if err := appendVerified(Verification{Required: true, Guard: current}, 0); err != nil {
		t.Fatalf("batch with the current guard: %v", err)
	}
	if err := appendVerified(Verification{Required: true}, 1); err != nil {
		t.Fatalf("second batch of the open transaction: %v", err)
	}
	if err := appendVerified(Verification{}, 2); err != nil {
		t.Fatalf("batch without verification: %v", err)
	}
}

// TestTruncateTakesBackMarkerState: a truncation that removes a marker takes back what it
// set, the producer's epoch and coordinator epoch, as Kafka reloads producer state on
// truncation; the transaction it ended is open again.
func TestTruncateTakesBackMarkerState(t *testing.T) {
	l := openLog(t, t.TempDir(), quietConfig())
	defer l.Close()
	mustAppend(t, l, epochTxnBatch(t, 7, 0, 0, 2, 1000))      // 0-1
	if _, err := appendMarker(l, 7, 0, 1, true); err != nil { // 2
		t.Fatal(err)
	}
	mustAppend(t, l, epochTxnBatch(t, 7, 0, 2, 1, 1000))       // 3
	if _, err := appendMarker(l, 7, 1, 2, false); err != nil { // 4: a new coordinator fences epoch 0
		t.Fatal(err)
	}
	if err := l.Truncate(4); err != nil {
		t.Fatal(err)
	}
	st, _ := l.Producer(7)
	if st.Epoch != 0 || st.CoordinatorEpoch != 1 || st.TxnStartOffset != 3 || st.LastSequence != 2 {
		t.Fatalf("producer 7 after the truncation took its marker: %+v", st)
	}
	if _, err := appendMarker(l, 7, 0, 1, true); err != nil {
		t.Fatalf("the old coordinator's marker after the truncation: %v", err)
	}
}

// FuzzDecodeProducers: a producer snapshot is read from disk, so any bytes may come back:
// decoding never panics, and what decodes encodes (as version 3) to bytes that decode to
// the same state.
func FuzzDecodeProducers(f *testing.F) {
	f.Add(producerTable{1: {epoch: 3, coordinatorEpoch: 9, lastTimestamp: 5, batches: []batchMeta{{0, 4, 10, 14}}}, 2: newProducerEntry()}.encode(openTxns{1: 10}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		table, txns, err := decodeProducers(b)
		if err != nil {
			return
		}
		again, againTxns, err := decodeProducers(table.encode(txns))
		if err != nil || !reflect.DeepEqual(again, table) || !reflect.DeepEqual(againTxns, txns) {
			t.Fatalf("re-encoded snapshot: %+v %+v %v, want %+v %+v", again, againTxns, err, table, txns)
		}
	})
}
