package journal

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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
