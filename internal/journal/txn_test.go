package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

const attrTransactional = 0x10

// txnBatch is a batch of n records of producer pid's transaction.
func txnBatch(t testing.TB, pid int64, seq int32, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Key: []byte{byte(pid), byte(i)}, Value: []byte{byte(pid), byte(seq), byte(i)}}
	}
	b, err := record.Build(record.Header{Attributes: attrTransactional, BaseTimestamp: 1, ProducerID: pid, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marker(pid int64, commit bool) []byte {
	return record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, 1, 0)
}

// expectTxns computes, from the log's batches alone, what FirstUnstableOffset and
// AbortedTransactions(0, max) must say: the model the incremental paths are checked against.
func expectTxns(t testing.TB, l *Log) (int64, []AbortedTxn) {
	t.Helper()
	b, err := l.ReadBytes(l.LogStartOffset(), 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	open := map[int64]int64{}
	var aborted []AbortedTxn
	for _, p := range parts {
		h, _ := record.ParseHeader(p)
		if !h.IsTransactional() {
			continue
		}
		if !h.IsControl() {
			if _, ok := open[h.ProducerID]; !ok {
				open[h.ProducerID] = h.BaseOffset
			}
			continue
		}
		m, err := record.ParseEndTxnMarker(p)
		if err != nil {
			t.Fatal(err)
		}
		first, ok := open[h.ProducerID]
		if !ok {
			first = h.BaseOffset
		}
		delete(open, h.ProducerID)
		if !m.Commit {
			lso := h.NextOffset()
			for _, f := range open {
				lso = min(lso, f)
			}
			aborted = append(aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset, LastStableOffset: lso})
		}
	}
	fuo := l.LogEndOffset()
	for _, f := range open {
		fuo = min(fuo, f)
	}
	return max(fuo, l.LogStartOffset()), aborted
}

func checkTxns(t testing.TB, what string, l *Log) {
	t.Helper()
	fuo, aborted := expectTxns(t, l)
	if got := l.FirstUnstableOffset(); got != fuo {
		t.Fatalf("%s: first unstable offset %d, the log's batches say %d", what, got, fuo)
	}
	if got := l.AbortedTransactions(0, math.MaxInt64); !reflect.DeepEqual(got, aborted) {
		t.Fatalf("%s: aborted transactions\n got %+v\nwant %+v", what, got, aborted)
	}
}

func TestTransactionsOpenCommitAbort(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig())
	defer func() { l.Close() }()
	mustAppend(t, l, batch(t, 0, 2, 1))                    // 0-1, not transactional
	a := mustAppend(t, l, txnBatch(t, 1, 0, 3)).BaseOffset // 2-4
	b := mustAppend(t, l, txnBatch(t, 2, 0, 1)).BaseOffset // 5
	mustAppend(t, l, txnBatch(t, 1, 3, 1))                 // 6, same transaction
	if got := l.FirstUnstableOffset(); got != a {
		t.Fatalf("first unstable offset %d, want %d", got, a)
	}
	mustAppend(t, l, marker(1, true)) // 7
	if got := l.FirstUnstableOffset(); got != b {
		t.Fatalf("after producer 1 commits: first unstable offset %d, want %d", got, b)
	}
	c := mustAppend(t, l, txnBatch(t, 1, 4, 1)).BaseOffset // 8: producer 1's next transaction
	abort := mustAppend(t, l, marker(2, false)).BaseOffset // 9
	want := []AbortedTxn{{ProducerID: 2, FirstOffset: b, LastOffset: abort, LastStableOffset: c}}
	if got := l.AbortedTransactions(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
	for _, r := range [][2]int64{{0, b}, {abort + 1, 100}} {
		if got := l.AbortedTransactions(r[0], r[1]); len(got) != 0 {
			t.Fatalf("aborted in [%d, %d): %+v, want none", r[0], r[1], got)
		}
	}
	if got := l.AbortedTransactions(abort, abort+1); !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted in the marker's range: %+v", got)
	}
	empty := mustAppend(t, l, marker(3, false)).BaseOffset // 10: an empty transaction
	mustAppend(t, l, marker(1, false))                     // 11
	want = append(want, AbortedTxn{ProducerID: 3, FirstOffset: empty, LastOffset: empty, LastStableOffset: c},
		AbortedTxn{ProducerID: 1, FirstOffset: c, LastOffset: empty + 1, LastStableOffset: empty + 2})
	if got := l.AbortedTransactions(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
	if got, end := l.FirstUnstableOffset(), l.LogEndOffset(); got != end {
		t.Fatalf("nothing open: first unstable offset %d, want the log end %d", got, end)
	}
	checkTxns(t, "appended", l)

	// A follower that copies the batches reaches the same state.
	f := openLog(t, t.TempDir(), quietConfig())
	defer f.Close()
	raw, err := l.ReadBytes(0, 1<<20, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.AppendReplicatedNoWait(raw); err != nil {
		t.Fatal(err)
	}
	if got := f.AbortedTransactions(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("follower: aborted %+v, want %+v", got, want)
	}

	// Closed and reopened, the state is the same.
	l = reopen(t, l, dir, quietConfig())
	checkTxns(t, "reopened", l)
}

// The .txnindex holds Kafka's 34-byte entries and nothing else.
func TestTxnIndexFileFormat(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig())
	mustAppend(t, l, txnBatch(t, 9, 0, 2))
	mustAppend(t, l, txnBatch(t, 8, 0, 1))
	mustAppend(t, l, marker(9, false))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, segmentName(0, txnIndexExt)))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0}
	for _, v := range []int64{9, 0, 3, 2} { // producer, first, last (the marker), LSO (producer 8's first)
		want = binary.BigEndian.AppendUint64(want, uint64(v))
	}
	if !equalBytes(b, want) {
		t.Fatalf(".txnindex %x, want %x", b, want)
	}
	for _, bad := range [][]byte{want[:33], append([]byte{0, 1}, want[2:]...)} {
		if _, err := decodeTxnIndex(bad); err == nil {
			t.Fatalf("decodeTxnIndex accepted %x", bad)
		}
	}
}

// txnWorkload appends n batches of producers 0-2's transactions; about one in markerEvery
// is a marker that commits or aborts.
func txnWorkload(t testing.TB, l *Log, rng *rand.Rand, n, markerEvery int) {
	t.Helper()
	for i := 0; i < n; i++ {
		pid := int64(rng.IntN(3))
		if rng.IntN(markerEvery) == 0 {
			mustAppend(t, l, marker(pid, rng.IntN(2) == 0))
		} else {
			mustAppend(t, l, txnBatch(t, pid, -1, 1))
		}
	}
}

// txnLog opens a log in a new directory with small segments.
func txnLog(t testing.TB, segmentBytes int64) (string, Config, *Log) {
	t.Helper()
	dir, cfg := t.TempDir(), quietConfig()
	cfg.SegmentBytes = segmentBytes
	return dir, cfg, openLog(t, dir, cfg)
}

// reopen closes l cleanly and opens it again.
func reopen(t testing.TB, l *Log, dir string, cfg Config) *Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return openLog(t, dir, cfg)
}

// Segments roll inside transactions; retention deletes a segment's .txnindex with it.
func TestTransactionsAcrossSegments(t *testing.T) {
	dir, cfg, l := txnLog(t, 300)
	defer func() { l.Close() }()
	txnWorkload(t, l, rand.New(rand.NewPCG(1, 2)), 200, 4)
	checkTxns(t, "appended", l)
	if len(l.Segments()) < 5 {
		t.Fatalf("only %d segments", len(l.Segments()))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkVerifyTxnIndex(t, dir)
	l = openLog(t, dir, cfg)
	checkTxns(t, "reopened", l)

	segs := l.Segments()
	if _, err := l.ApplyRetention(Retention{Ms: -1, Bytes: 0}); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs[:len(segs)-1] {
		if _, err := os.Stat(filepath.Join(dir, segmentName(s.BaseOffset, txnIndexExt))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment %d deleted, its .txnindex is still there (%v)", s.BaseOffset, err)
		}
	}
	if fuo, start := l.FirstUnstableOffset(), l.LogStartOffset(); fuo < start {
		t.Fatalf("first unstable offset %d below the log start %d", fuo, start)
	}
	for _, a := range l.AbortedTransactions(0, math.MaxInt64) {
		if a.LastOffset < l.LogStartOffset() {
			t.Fatalf("aborted transaction %+v of a deleted segment is still served", a)
		}
	}
}

// Truncation drops the markers past the cut: the transactions they ended are open again.
func TestTransactionsTruncate(t *testing.T) {
	for cut := int64(0); cut <= 30; cut += 3 {
		dir, cfg, l := txnLog(t, 400)
		txnWorkload(t, l, rand.New(rand.NewPCG(uint64(cut), 7)), 40, 3)
		if err := l.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		checkTxns(t, "truncated", l)
		l = reopen(t, l, dir, cfg)
		checkTxns(t, "truncated and reopened", l)
		l.Close()
	}
}

// After a power loss at any moment, recovery rebuilds the open transactions and the
// aborted-transaction indexes of what survived, and a second crash right after recovery
// changes nothing.
func TestTransactionsCrashRecovery(t *testing.T) {
	iterations := 40
	if testing.Short() {
		iterations = 10
	}
	for seed := 0; seed < iterations; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 13))
		m := memDataDir(t)
		cfg := memCrashConfig(FsyncAlways)
		cfg.SegmentBytes = 512
		cfg.FS = m
		l := openLog(t, memCrashDir, cfg)
		var crashed *vfs.Mem
		crashAt := rng.IntN(120)
		for i := 0; i < 120; i++ {
			if i == crashAt {
				crashed = m.CrashCloneRandom(rng)
			}
			pid := int64(rng.IntN(3))
			switch rng.IntN(8) {
			case 0:
				mustAppend(t, l, marker(pid, false))
			case 1:
				mustAppend(t, l, marker(pid, true))
			case 2:
				l = reopen(t, l, memCrashDir, cfg)
			default:
				mustAppend(t, l, txnBatch(t, pid, -1, 1+rng.IntN(3)))
			}
		}
		l.Close()
		if rep, err := VerifyFS(crashed, memCrashDir); err != nil || rep.IsDamaged() {
			t.Fatalf("seed %d: verify after the crash: %v %+v", seed, err, rep.Problems)
		}
		cfg.FS = crashed
		l = openLog(t, memCrashDir, cfg)
		checkTxns(t, "recovered", l)
		again := cfg
		again.FS = crashed.CrashClone()
		l2 := openLog(t, memCrashDir, again)
		checkTxns(t, "recovered twice", l2)
		l2.Close()
		l = reopen(t, l, memCrashDir, cfg)
		checkTxns(t, "reopened after recovery", l)
		l.Close()
	}
}

// A cleaned segment takes over the aborted-transaction index of the segments it replaces.
func TestTransactionsSurviveCleaning(t *testing.T) {
	dir, cfg, l := txnLog(t, 300)
	defer func() { l.Close() }()
	txnWorkload(t, l, rand.New(rand.NewPCG(3, 4)), 100, 4)
	// A transaction still open stops the cleaner at its first offset.
	open := mustAppend(t, l, txnBatch(t, 9, -1, 1)).BaseOffset
	for i := 0; i < 20; i++ {
		mustAppend(t, l, txnBatch(t, int64(i%3), -1, 1))
	}
	checkTxns(t, "appended", l)
	c := NewCleaner(CleanerConfig{DedupeBufferSize: 1 << 20})
	if st, err := c.Clean(context.Background(), l, Compaction{Force: true, DeleteRetention: time.Hour}); err != nil || st.CleanedTo > open {
		t.Fatalf("clean with a transaction open from %d: %+v %v", open, st, err)
	}
	for pid := int64(0); pid < 3; pid++ {
		mustAppend(t, l, marker(pid, pid == 1))
	}
	mustAppend(t, l, marker(9, false))
	want := l.AbortedTransactions(0, math.MaxInt64)
	st, err := c.Clean(context.Background(), l, Compaction{Force: true, DeleteRetention: time.Hour})
	if err != nil || st.CleanedTo <= open || st.RecordsRemoved == 0 {
		t.Fatalf("clean: %+v %v", st, err)
	}
	if got := l.AbortedTransactions(0, math.MaxInt64); !reflect.DeepEqual(got, want) {
		t.Fatalf("after cleaning: aborted %+v, want %+v", got, want)
	}
	l = reopen(t, l, dir, cfg)
	if got := l.AbortedTransactions(0, math.MaxInt64); !reflect.DeepEqual(got, want) {
		t.Fatalf("cleaned and reopened: aborted %+v, want %+v", got, want)
	}
}

// checkVerifyTxnIndex checks that debug verify accepts the closed log's .txnindex files and
// reports a damaged one, then puts it back.
func checkVerifyTxnIndex(t *testing.T, dir string) {
	t.Helper()
	if rep, err := Verify(dir); err != nil || rep.IsDamaged() {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"+txnIndexExt))
	if len(names) < 2 {
		t.Fatalf("%d .txnindex files", len(names))
	}
	name := names[0]
	orig, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)-txnEntrySize+25]++ // the last entry's marker offset, low byte
	for _, b := range [][]byte{orig[:len(orig)-1], bad} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(dir)
		if err != nil || !rep.IsDamaged() || !strings.HasSuffix(rep.Problems[0].File, txnIndexExt) {
			t.Fatalf("verify of a damaged %s: %v %+v", filepath.Base(name), err, rep.Problems)
		}
	}
	if err := os.WriteFile(name, orig, 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeTxnIndex(f *testing.F) {
	f.Add(encodeTxnIndex([]AbortedTxn{{ProducerID: 1, FirstOffset: 2, LastOffset: 5, LastStableOffset: 6}, {ProducerID: 3, FirstOffset: 0, LastOffset: 9, LastStableOffset: 10}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeTxnIndex(b)
		if err != nil {
			return
		}
		if again := encodeTxnIndex(entries); !equalBytes(again, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, entries, again)
		}
	})
}
