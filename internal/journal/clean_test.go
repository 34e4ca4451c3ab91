package journal

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

var allCodecs = []record.Codec{record.CodecNone, record.CodecGzip, record.CodecSnappy, record.CodecLZ4, record.CodecZstd}

// table is what a consumer rebuilds from a compacted log: key → latest value, tombstones
// removing keys.
type table map[string]string

func (t table) apply(key, value []byte) {
	if value == nil {
		delete(t, string(key))
	} else {
		t[string(key)] = string(value)
	}
}

// logScan is everything a reader from the log start sees.
type logScan struct {
	table      table
	records    int // records in closed segments
	tombstones int // tombstones in closed segments
	batches    []record.Header
	byOffset   map[int64]record.Record
	base       map[int64]record.Header // header of the batch holding each offset
}

// scanLog reads the whole log as a consumer would, checking that offsets only increase.
func scanLog(t testing.TB, l *Log) logScan {
	t.Helper()
	segs := l.Segments()
	activeBase := segs[len(segs)-1].BaseOffset
	b, err := l.ReadBytes(l.LogStartOffset(), 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatalf("log holds invalid batches: %v", err)
	}
	s := logScan{table: table{}, byOffset: map[int64]record.Record{}, base: map[int64]record.Header{}}
	last := int64(-1)
	for _, p := range parts {
		h, _ := record.ParseHeader(p)
		s.batches = append(s.batches, h)
		recs, err := record.Records(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off <= last || off > h.LastOffset() {
				t.Fatalf("offset %d after %d in batch [%d, %d]", off, last, h.BaseOffset, h.LastOffset())
			}
			last = off
			s.table.apply(r.Key, r.Value)
			s.byOffset[off] = r
			s.base[off] = h
			if off < activeBase {
				s.records++
				if r.Value == nil {
					s.tombstones++
				}
			}
		}
	}
	return s
}

// keyedBatch builds a batch of updates: key i%keys or a tombstone for every 10th of
// deletes, each record with a header and its own timestamp.
type update struct {
	key, value []byte // value nil: delete
}

func buildUpdates(t testing.TB, ups []update, ts int64, codec record.Codec) []byte {
	t.Helper()
	recs := make([]record.Record, len(ups))
	for i, u := range ups {
		recs[i] = record.Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: u.key, Value: u.value,
			Headers: []record.RecordHeader{{Key: "v", Value: u.value}}}
	}
	b, err := record.Build(record.Header{BaseTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, codec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cleanConfig(clock *fakeClock, segmentBytes int64) Config {
	cfg := quietConfig()
	cfg.Fsync = FsyncNever
	cfg.SegmentBytes = segmentBytes
	if clock != nil {
		cfg.Now = clock.Now
	}
	return cfg
}

// TestCleanRebuildsTheTable produces 1,000,000 updates over 10,000 keys with random deletes
// in batches of random codecs, cleans, and checks that a reader from the beginning rebuilds
// exactly the table the full stream defines, that record timestamps, headers and codecs
// survive, that tombstones stay until delete.retention.ms after their first clean and then
// go, and that the closed segments hold at most one record per live key.
func TestCleanRebuildsTheTable(t *testing.T) {
	updates, keys := 1_000_000, 10_000
	if testing.Short() {
		updates, keys = 100_000, 1_000
	}
	clock := newFakeClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	l := openLog(t, t.TempDir(), cleanConfig(clock, 1<<20))
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	want := table{}
	codecAt := map[int64]record.Codec{}
	tsOf := map[string]int64{} // value → its record timestamp
	for n := 0; n < updates; {
		size := min(1+rng.IntN(64), updates-n)
		ups := make([]update, size)
		for i := range ups {
			ups[i].key = []byte(fmt.Sprintf("key-%05d", rng.IntN(keys)))
			if rng.IntN(20) != 0 {
				ups[i].value = []byte(fmt.Sprintf("value-%d", n+i))
			}
		}
		codec := allCodecs[rng.IntN(len(allCodecs))]
		ts := clock.Millis() + int64(n)
		res := mustAppend(t, l, buildUpdates(t, ups, ts, codec))
		codecAt[res.BaseOffset] = codec
		for i, u := range ups {
			want.apply(u.key, u.value)
			if u.value != nil {
				tsOf[string(u.value)] = ts + int64(i)
			}
		}
		n += size
	}
	before := l.Size()
	c := NewCleaner(CleanerConfig{DedupeBufferSize: 1 << 20})
	comp := Compaction{DeleteRetention: time.Hour, MinCleanableRatio: 0.5}
	start := time.Now()
	st, err := c.Clean(context.Background(), l, comp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pass 1: %+v in %v; %d → %d bytes, %d segments", st, time.Since(start), before, l.Size(), len(l.Segments()))
	if !st.Cleaned || st.CleanedTo != l.Segments()[len(l.Segments())-1].BaseOffset {
		t.Fatalf("pass 1 did not clean up to the active segment: %+v", st)
	}
	s := scanLog(t, l)
	checkTable(t, s.table, want)
	if s.tombstones == 0 {
		t.Fatal("tombstones went on their first clean, before delete.retention.ms")
	}
	for off, r := range s.byOffset {
		h := s.base[off]
		if r.Value != nil && (h.BaseTimestamp+r.TimestampDelta != tsOf[string(r.Value)] || len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, r.Value)) {
			t.Fatalf("offset %d: timestamp or header changed: %+v", off, r)
		}
		if h.Compression() != codecAt[h.BaseOffset] {
			t.Fatalf("batch %d: codec %v, produced with %v", h.BaseOffset, h.Compression(), codecAt[h.BaseOffset])
		}
	}

	// Nothing new is dirty: the next pass has nothing to do.
	if st, err := c.Clean(context.Background(), l, comp); err != nil || st.Cleaned {
		t.Fatalf("clean with nothing dirty: %+v %v", st, err)
	}
	// Past delete.retention.ms the tombstones go, once a forced pass runs.
	clock.Advance(time.Hour)
	comp.Force = true
	if st, err = c.Clean(context.Background(), l, comp); err != nil {
		t.Fatal(err)
	}
	s = scanLog(t, l)
	checkTable(t, s.table, want)
	if s.tombstones != 0 {
		t.Fatalf("%d tombstones left after delete.retention.ms", s.tombstones)
	}
	if s.records > len(want) {
		t.Fatalf("closed segments hold %d records for %d live keys", s.records, len(want))
	}
	if segs := l.Segments(); len(segs) > 3 {
		t.Fatalf("%d segments after cleaning: small cleaned segments were not grouped", len(segs))
	}
	t.Logf("pass 2: %+v; %d records in closed segments for %d keys, %d bytes", st, s.records, len(want), l.Size())
	// The rebuilt time indexes answer ListOffsets by timestamp: timestamps grow with offsets
	// here, so each kept record is the first at or after its own timestamp.
	checked := 0
	for off, r := range s.byOffset {
		if checked++; checked > 200 {
			break
		}
		ts := s.base[off].BaseTimestamp + r.TimestampDelta
		got, gotTS, found, err := l.OffsetForTimestamp(ts)
		if err != nil || !found || got != off || gotTS != ts {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want offset %d", ts, got, gotTS, found, err, off)
		}
	}

	// A reopen reads the same table (indexes and cleaner checkpoint on disk).
	dir := l.Dir()
	l.Close()
	l2 := openLog(t, dir, cleanConfig(clock, 1<<20))
	defer l2.Close()
	checkTable(t, scanLog(t, l2).table, want)
}

func checkTable(t testing.TB, got, want table) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("table has %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %s: %q, want %q", k, got[k], v)
		}
	}
}

// TestCleanWithSmallDedupeBuffer: a key map too small for the dirty section makes each pass
// stop at a batch boundary; repeated passes still reach the table, and a map that cannot
// hold one batch is an error, not a wrong clean.
func TestCleanWithSmallDedupeBuffer(t *testing.T) {
	l := openLog(t, t.TempDir(), cleanConfig(nil, 32<<10))
	defer l.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	want := table{}
	for i := 0; i < 2000; i++ {
		ups := make([]update, 10)
		for j := range ups {
			ups[j] = update{key: []byte(fmt.Sprintf("key-%d", rng.IntN(500))), value: []byte(fmt.Sprintf("v%d-%d", i, j))}
			want.apply(ups[j].key, ups[j].value)
		}
		mustAppend(t, l, buildUpdates(t, ups, 1, record.CodecNone))
	}
	if _, err := NewCleaner(CleanerConfig{DedupeBufferSize: 5 * mapSlotSize}).Clean(context.Background(), l, Compaction{Force: true}); err != ErrDedupeBufferTooSmall {
		t.Fatalf("map of 5 slots: %v", err)
	}
	c := NewCleaner(CleanerConfig{DedupeBufferSize: 300 * mapSlotSize}) // 270 keys a pass
	active := l.Segments()[len(l.Segments())-1].BaseOffset
	passes := 0
	for l.CleanerStatus().FirstDirty < active {
		st, err := c.Clean(context.Background(), l, Compaction{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if passes++; passes > 200 || st.CleanedTo <= st.FirstDirty {
			t.Fatalf("pass %d made no progress: %+v", passes, st)
		}
		checkTable(t, scanLog(t, l).table, want)
	}
	if passes < 5 {
		t.Fatalf("%d passes: the small map did not bound the passes", passes)
	}
	s := scanLog(t, l)
	if s.records > 500 {
		t.Fatalf("%d records left in closed segments for 500 keys", s.records)
	}
}

// TestCleanWhileReading runs appends, cleaning passes and readers at once: every reader
// going from the log start to the end sees each key's versions only increase, and reads only
// valid batches, though segments are swapped under it.
func TestCleanWhileReading(t *testing.T) {
	batches := 1500
	if testing.Short() {
		batches = 300
	}
	cfg := cleanConfig(nil, 8<<10)
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := table{}
	wg.Add(1)
	go func() { // producer: value is the key's version, counting up
		defer wg.Done()
		version := map[string]int{}
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; i < batches && ctx.Err() == nil; i++ {
			ups := make([]update, 8)
			for j := range ups {
				k := fmt.Sprintf("k%02d", rng.IntN(50))
				version[k]++
				ups[j] = update{key: []byte(k), value: []byte(fmt.Sprintf("%08d", version[k]))}
			}
			if _, err := l.Append(ctx, buildUpdates(t, ups, 1, allCodecs[i%len(allCodecs)]), AppendOptions{}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, u := range ups {
				want.apply(u.key, u.value)
			}
			mu.Unlock()
		}
	}()
	passes := 0
	wg.Add(1)
	go func() { // cleaner
		defer wg.Done()
		c := NewCleaner(CleanerConfig{DedupeBufferSize: 1 << 20})
		for ctx.Err() == nil {
			changed := l.Changed()
			if _, err := c.Clean(ctx, l, Compaction{Force: true}); err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			passes++
			mu.Unlock()
			select { // the next pass once something was appended
			case <-changed:
			case <-ctx.Done():
			}
		}
	}()
	reads := 0
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				seen := map[string]string{}
				offset := l.LogStartOffset()
				end := l.LogEndOffset()
				for offset < end {
					res, err := l.Read(offset, 4<<10, end, true)
					if err != nil {
						t.Errorf("read at %d: %v", offset, err)
						return
					}
					for _, fr := range res.Ranges {
						b := make([]byte, fr.Len)
						if _, err := fr.File.ReadAt(b, fr.Pos); err != nil {
							t.Errorf("read range: %v", err)
							return
						}
						parts, err := record.Split(b)
						if err != nil {
							t.Errorf("invalid bytes at %d: %v", offset, err)
							return
						}
						for _, p := range parts {
							recs, _ := record.Records(p)
							for _, rec := range recs {
								k, v := string(rec.Key), string(rec.Value)
								if prev, ok := seen[k]; ok && v <= prev {
									t.Errorf("key %s went from version %s back to %s", k, prev, v)
									return
								}
								seen[k] = v
							}
						}
					}
					if res.NextOffset <= offset {
						break
					}
					offset = res.NextOffset
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		done := len(want) == 50 && l.LogEndOffset() >= int64(batches*8) && reads >= 10 && passes >= 3
		mu.Unlock()
		if done || t.Failed() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the goroutines' progress
	}
	cancel()
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatalf("after 60s: %d reads, %d passes, end %d", reads, passes, l.LogEndOffset())
	}
	checkTable(t, scanLog(t, l).table, want)
	t.Logf("%d cleaning passes, %d full reads", passes, reads)
}

// TestCleanKeepsProducerState: when every record of an idempotent producer is superseded,
// its newest batch stays as an empty batch, so after a reopen that rebuilds producer state
// from the log the producer's next sequence is accepted and a retry is a duplicate.
func TestCleanKeepsProducerState(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, cleanConfig(nil, 4<<10))
	for seq := int32(0); seq < 10; seq++ {
		recs := []record.Record{{Key: []byte("a"), Value: []byte{byte(seq)}}}
		b, _ := record.Build(record.Header{BaseTimestamp: 1, ProducerID: 42, ProducerEpoch: 0, BaseSequence: seq}, recs, record.CodecLZ4)
		mustAppend(t, l, b)
	}
	for i := 0; i < 200; i++ { // another writer supersedes key a, and rolls segments
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte("a"), value: []byte(strings.Repeat("z", 100))}}, 1, record.CodecNone))
	}
	if _, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, Compaction{Force: true}); err != nil {
		t.Fatal(err)
	}
	s := scanLog(t, l)
	var kept []record.Header
	for _, h := range s.batches {
		if h.ProducerID == 42 {
			kept = append(kept, h)
		}
	}
	if len(kept) != 1 || kept[0].RecordCount != 0 || kept[0].BaseSequence != 9 || kept[0].BaseOffset != 9 {
		t.Fatalf("producer 42's batches after cleaning: %+v", kept)
	}
	l.Close()
	snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotExt))
	for _, s := range snaps {
		os.Remove(s) // rebuild producer state from the batches alone
	}
	l = openLog(t, dir, cleanConfig(nil, 4<<10))
	defer l.Close()
	if st, ok := l.Producer(42); !ok || st.LastSequence != 9 || st.LastOffset != 9 {
		t.Fatalf("producer state after reopen: %+v %v", st, ok)
	}
	dup, err := l.Append(context.Background(), idemBatch(t, 42, 0, 9, 1), AppendOptions{})
	if err != nil || !dup.Duplicate || dup.BaseOffset != 9 {
		t.Fatalf("retry of the last batch: %+v %v", dup, err)
	}
	if res, err := l.Append(context.Background(), idemBatch(t, 42, 0, 10, 1), AppendOptions{}); err != nil || res.Duplicate {
		t.Fatalf("next sequence: %+v %v", res, err)
	}
}

// TestCleanKeepsLogStartOffset: when every record of the first segments is superseded the
// log start offset stays where it was, also after a reopen, so a consumer positioned there
// is not told its offset is out of range.
func TestCleanKeepsLogStartOffset(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, cleanConfig(nil, 2<<10))
	for i := 0; i < 100; i++ {
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte("same"), value: []byte(fmt.Sprintf("%0100d", i))}}, 1, record.CodecNone))
	}
	if _, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, Compaction{Force: true}); err != nil {
		t.Fatal(err)
	}
	check := func(l *Log, when string) {
		if l.LogStartOffset() != 0 {
			t.Fatalf("%s: log start %d, want 0", when, l.LogStartOffset())
		}
		res, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
		if err != nil || res.FirstOffset <= 0 {
			t.Fatalf("%s: read at 0: %+v %v", when, res, err)
		}
	}
	check(l, "after cleaning")
	l.Close()
	l = openLog(t, dir, cleanConfig(nil, 2<<10))
	defer l.Close()
	check(l, "after reopen")
	if s := scanLog(t, l); s.table["same"] != fmt.Sprintf("%0100d", 99) {
		t.Fatalf("latest value lost: %q", s.table["same"])
	}
}

// TestCleanHonoursRatioAndLags: min.cleanable.dirty.ratio holds a pass back,
// max.compaction.lag.ms forces one anyway, and min.compaction.lag.ms keeps recent segments
// out of it.
func TestCleanHonoursRatioAndLags(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	l := openLog(t, t.TempDir(), cleanConfig(clock, 2<<10))
	defer l.Close()
	// Ten segments of updates to one key; record timestamps are the clock's.
	for i := 0; i < 100; i++ {
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte("k"), value: []byte(fmt.Sprintf("%0100d", i))}}, clock.Millis(), record.CodecNone))
	}
	c := NewCleaner(CleanerConfig{})
	ctx := context.Background()
	st, err := c.Clean(ctx, l, Compaction{MinCleanableRatio: 1.01}) // a ratio never reached
	if err != nil || st.Cleaned || st.DirtyRatio != 1 {
		t.Fatalf("below the ratio: %+v %v", st, err)
	}
	// min.compaction.lag.ms: everything is younger than an hour, so nothing is cleanable.
	if st, err = c.Clean(ctx, l, Compaction{Force: true, MinCompactionLag: time.Hour}); err != nil || st.Cleaned {
		t.Fatalf("within min.compaction.lag.ms: %+v %v", st, err)
	}
	// max.compaction.lag.ms: two hours on, the dirty records are overdue; the pass runs though
	// the ratio says no.
	clock.Advance(2 * time.Hour)
	if st, err = c.Clean(ctx, l, Compaction{MinCleanableRatio: 1.01, MaxCompactionLag: 3 * time.Hour}); err != nil || st.Cleaned {
		t.Fatalf("before max.compaction.lag.ms: %+v %v", st, err)
	}
	st, err = c.Clean(ctx, l, Compaction{MinCleanableRatio: 1.01, MaxCompactionLag: time.Hour, MinCompactionLag: time.Hour})
	if err != nil || !st.Cleaned {
		t.Fatalf("past max.compaction.lag.ms: %+v %v", st, err)
	}
	if s := scanLog(t, l); s.records != 1 {
		t.Fatalf("%d records in closed segments, want 1", s.records)
	}
	// New records younger than min.compaction.lag.ms stay as written.
	for i := 100; i < 200; i++ {
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte("k"), value: []byte(fmt.Sprintf("%0100d", i))}}, clock.Millis(), record.CodecNone))
	}
	before := scanLog(t, l).records
	if st, err = c.Clean(ctx, l, Compaction{Force: true, MinCompactionLag: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if after := scanLog(t, l).records; after != before {
		t.Fatalf("records within min.compaction.lag.ms were compacted: %d → %d (%+v)", before, after, st)
	}
}

// TestCleanerThrottle: a pass over about 1 MiB with a budget of 1 MiB/s (a burst of one
// second's worth) takes at least the time its bytes beyond the burst allow.
func TestCleanerThrottle(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps by design")
	}
	l := openLog(t, t.TempDir(), cleanConfig(nil, 64<<10))
	defer l.Close()
	for i := 0; l.Size() < 1<<20; i++ {
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte(fmt.Sprint(i % 10)), value: []byte(strings.Repeat("x", 1000))}}, 1, record.CodecNone))
	}
	const rate = 1 << 20
	c := NewCleaner(CleanerConfig{IOBytesPerSecond: rate})
	start := time.Now()
	st, err := c.Clean(context.Background(), l, Compaction{Force: true})
	if err != nil || !st.Cleaned {
		t.Fatalf("%+v %v", st, err)
	}
	took := time.Since(start)
	floor := time.Duration(float64(st.BytesRead+st.BytesWritten-rate-64<<10) / rate * float64(time.Second))
	if took < floor {
		t.Fatalf("%d bytes in %v: faster than %d bytes/s allows (%v)", st.BytesRead+st.BytesWritten, took, rate, floor)
	}
	t.Logf("%d bytes read, %d written in %v (floor %v)", st.BytesRead, st.BytesWritten, took, floor)
}

// TestCleanAbortsWhenRetentionDeletesItsSegments: retention deleting segments while a pass
// writes their cleaned copy makes the pass stop without swapping them back in.
func TestCleanAbortsWhenRetentionDeletesItsSegments(t *testing.T) {
	l := openLog(t, t.TempDir(), cleanConfig(nil, 2<<10))
	defer l.Close()
	for i := 0; i < 100; i++ {
		mustAppend(t, l, buildUpdates(t, []update{{key: []byte(fmt.Sprint(i % 3)), value: []byte(strings.Repeat("x", 100))}}, 1, record.CodecNone))
	}
	defer func() { cleanHook = func(string) {} }()
	cleanHook = func(step string) {
		if step == "cleaned-written" {
			cleanHook = func(string) {}
			if _, err := l.ApplyRetention(Retention{Ms: -1, Bytes: 0}); err != nil {
				t.Error(err)
			}
		}
	}
	st, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, Compaction{Force: true})
	if err != nil || !st.Aborted || st.Cleaned {
		t.Fatalf("pass under retention: %+v %v", st, err)
	}
	if segs := l.Segments(); len(segs) != 1 || l.LogStartOffset() != segs[0].BaseOffset {
		t.Fatalf("segments %+v, start %d", segs, l.LogStartOffset())
	}
	if left, _ := filepath.Glob(filepath.Join(l.Dir(), "*"+cleanedExt)); len(left) > 0 {
		t.Fatalf("aborted pass left %v", left)
	}
	scanLog(t, l)
}
