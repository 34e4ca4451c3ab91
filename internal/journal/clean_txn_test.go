package journal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

// keyedTxnBatch is producer pid's transactional batch of one record key=value, without a
// sequence (as the group coordinator writes a transaction's offsets).
func keyedTxnBatch(t testing.TB, pid int64, key, value string) []byte {
	t.Helper()
	b, err := record.Build(record.Header{Attributes: attrTransactional, BaseTimestamp: 1, ProducerID: pid, BaseSequence: -1},
		[]record.Record{{Key: []byte(key), Value: []byte(value)}}, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dataTable is the table a consumer rebuilds from the log's data records (markers are not
// data).
func dataTable(t testing.TB, l *Log) table {
	t.Helper()
	b, err := l.ReadBytes(l.LogStartOffset(), 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	out := table{}
	for _, p := range parts {
		if h, _ := record.ParseHeader(p); h.IsControl() {
			continue
		}
		recs, err := record.Records(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out.apply(r.Key, r.Value)
		}
	}
	return out
}

// markerOffsets lists the offsets of the log's transaction markers.
func markerOffsets(t testing.TB, l *Log) map[int64]int64 {
	t.Helper()
	out := map[int64]int64{} // producer → marker offset
	for _, h := range scanLog(t, l).batches {
		if h.IsControl() {
			out[h.ProducerID] = h.BaseOffset
		}
	}
	return out
}

// TestCleanTransactions: compaction removes an aborted transaction's records at once and
// never lets them hide the committed value of their key; it removes a marker only once no
// batch of its transaction is left and delete.retention.ms has passed since it was first
// cleaned, and an ABORT marker's .txnindex entry goes with it (Kafka's LogCleaner with
// CleanedTransactionMetadata).
func TestCleanTransactions(t *testing.T) {
	clock := newFakeClock(time.Unix(1700000000, 0))
	dir := t.TempDir()
	l := openLog(t, dir, cleanConfig(clock, 4<<10))
	mustAppend(t, l, buildUpdates(t, []update{{key: []byte("a"), value: []byte("v1")}}, 1, record.CodecNone)) // 0
	mustAppend(t, l, keyedTxnBatch(t, 5, "a", "aborted"))                                                     // 1
	mustAppend(t, l, marker(5, false))                                                                        // 2
	mustAppend(t, l, keyedTxnBatch(t, 6, "b", "x"))                                                           // 3
	mustAppend(t, l, marker(6, true))                                                                         // 4
	mustAppend(t, l, keyedTxnBatch(t, 7, "c", "y"))                                                           // 5
	mustAppend(t, l, marker(7, true))                                                                         // 6
	mustAppend(t, l, buildUpdates(t, []update{{key: []byte("c"), value: []byte("z")}}, 1, record.CodecNone))  // 7
	for i := 0; i < 100; i++ {                                                                                // another key rolls segments past them
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte("f"), value: []byte(strings.Repeat("f", 100))}}, 1, record.CodecNone))
	}
	want := table{"a": "v1", "b": "x", "c": "z", "f": strings.Repeat("f", 100)}
	comp := Compaction{DeleteRetention: time.Hour, Force: true}
	if _, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, comp); err != nil {
		t.Fatal(err)
	}
	s := scanLog(t, l)
	checkTable(t, dataTable(t, l), want)
	if _, ok := s.byOffset[1]; ok {
		t.Fatal("the aborted record survived the clean")
	}
	if got := markerOffsets(t, l); len(got) != 3 {
		t.Fatalf("markers after the first clean: %v, want all three (their data was met in this pass)", got)
	}
	if got := l.AbortedTransactions(0, l.LogEndOffset()); len(got) != 1 || got[0].LastOffset != 2 {
		t.Fatalf("aborted transactions after the first clean: %+v", got)
	}

	clock.Advance(2 * time.Hour)
	if _, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, comp); err != nil {
		t.Fatal(err)
	}
	checkTable(t, dataTable(t, l), want)
	if got := markerOffsets(t, l); len(got) != 1 || got[6] != 4 {
		t.Fatalf("markers after delete.retention.ms: %v, want only producer 6's COMMIT at 4, whose record stays", got)
	}
	if got := l.AbortedTransactions(0, l.LogEndOffset()); len(got) != 0 {
		t.Fatalf("aborted transactions after the ABORT marker went: %+v", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := mustVerify(t, dir); r.IsDamaged() {
		t.Fatalf("verify after cleaning: %+v", r.Problems)
	}
}
