package journal

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

// fakeClock is a Config.Now that tests move by hand.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (c *fakeClock) Millis() int64           { return c.ms.Load() }

// segmentedLog writes count batches of 10 records, one segment per batch, with record
// timestamps one hour apart ending now.
func segmentedLog(t *testing.T, clock *fakeClock, count int) *Log {
	t.Helper()
	cfg := quietConfig()
	cfg.Now = clock.Now
	cfg.SegmentBytes = int64(len(batch(t, 0, 10, 0))) // every batch rolls a new segment
	l := openLog(t, t.TempDir(), cfg)
	t.Cleanup(func() { l.Close() })
	for i := 0; i < count; i++ {
		ts := clock.Millis() - int64(count-1-i)*time.Hour.Milliseconds()
		mustAppend(t, l, batch(t, i, 10, ts-9)) // max timestamp is ts
	}
	return l
}

func TestRetentionByTime(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := segmentedLog(t, clock, 10)
	if n := len(l.Segments()); n != 10 {
		t.Fatalf("%d segments, want 10", n)
	}
	// Segments whose newest record is more than 3.5 h old go: the 6 oldest (9 h .. 4 h old).
	n, err := l.ApplyRetention(Retention{Ms: 3*time.Hour + 30*time.Minute, Bytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || l.LogStartOffset() != 60 || len(l.Segments()) != 4 {
		t.Fatalf("deleted %d, start %d, %d segments; want 6, 60, 4", n, l.LogStartOffset(), len(l.Segments()))
	}
	if _, err := l.Read(59, 1<<20, l.LogEndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v", err)
	}
	if _, vals := readAll(t, l, 60); len(vals) != 40 || vals[0] != "batch-6-record-0" {
		t.Fatalf("kept %d records starting %q", len(vals), vals[0])
	}
	// Ten hours later everything has expired, but the active segment stays.
	clock.Advance(10 * time.Hour)
	if n, err = l.ApplyRetention(Retention{Ms: time.Hour, Bytes: -1}); err != nil || n != 3 {
		t.Fatalf("deleted %d (%v), want 3", n, err)
	}
	if segs := l.Segments(); len(segs) != 1 || segs[0].BaseOffset != 90 || l.LogStartOffset() != 90 {
		t.Fatalf("segments %+v start %d", segs, l.LogStartOffset())
	}
	// -1 keeps for ever.
	mustAppend(t, l, batch(t, 10, 10, 1))
	if n, _ := l.ApplyRetention(Retention{Ms: -1, Bytes: -1}); n != 0 {
		t.Fatalf("retention.ms=-1 deleted %d segments", n)
	}
	// The start survives a reopen.
	dir := l.Dir()
	l.Close()
	l2 := openLog(t, dir, quietConfig())
	defer l2.Close()
	if l2.LogStartOffset() != 90 {
		t.Fatalf("start after reopen %d", l2.LogStartOffset())
	}
}

func TestRetentionBySize(t *testing.T) {
	clock := newFakeClock(time.Now())
	l := segmentedLog(t, clock, 10)
	segSize := l.Segments()[0].Size
	// retention.bytes of 3.5 segments: as in Kafka a segment goes only if what remains is
	// still at least the limit, so the partition keeps 4 segments (at most one segment over).
	n, err := l.ApplyRetention(Retention{Ms: -1, Bytes: 3*segSize + segSize/2})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || l.Size() != 4*segSize || l.LogStartOffset() != 60 {
		t.Fatalf("deleted %d, size %d (segment %d), start %d", n, l.Size(), segSize, l.LogStartOffset())
	}
	// Size 0 would delete everything but the active segment.
	if n, _ = l.ApplyRetention(Retention{Ms: -1, Bytes: 0}); n != 3 || l.LogStartOffset() != 90 {
		t.Fatalf("deleted %d, start %d", n, l.LogStartOffset())
	}
	// Both limits apply together: time alone would keep these.
	clock2 := newFakeClock(time.Now())
	l2 := segmentedLog(t, clock2, 4)
	if n, _ := l2.ApplyRetention(Retention{Ms: 24 * time.Hour, Bytes: 2 * segSize}); n != 2 {
		t.Fatalf("combined limits deleted %d, want 2", n)
	}
}

// TestDeletedSegmentStaysReadable: a reader that took a file range before retention
// deleted the segment still reads valid bytes (file.delete.delay.ms).
func TestDeletedSegmentStaysReadable(t *testing.T) {
	clock := newFakeClock(time.Now())
	l := segmentedLog(t, clock, 3)
	res, err := l.Read(0, 1<<20, 10, true)
	if err != nil || len(res.Ranges) != 1 {
		t.Fatalf("read %+v %v", res, err)
	}
	if n, _ := l.ApplyRetention(Retention{Ms: -1, Bytes: 0}); n != 2 {
		t.Fatalf("deleted %d", n)
	}
	r := res.Ranges[0]
	b := make([]byte, r.Len)
	if _, err := r.File.ReadAt(b, r.Pos); err != nil {
		t.Fatalf("read from deleted segment: %v", err)
	}
	if h, err := record.Validate(b); err != nil || h.BaseOffset != 0 {
		t.Fatalf("bytes of the deleted segment: %+v %v", h, err)
	}
}
