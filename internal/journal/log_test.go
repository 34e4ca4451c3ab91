package journal

import (
	"context"
	"errors"
	"fmt"
	"github.com/strand-data/strand/internal/vfs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

func TestAppendAssignsOffsetsAndReadsBack(t *testing.T) {
	cfg := quietConfig()
	cfg.SegmentBytes = 2000 // several segments
	cfg.IndexIntervalBytes = 300
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	var want []string
	next := int64(0)
	for i := 0; i < 40; i++ {
		n := 1 + i%5
		res := mustAppend(t, l, batch(t, i, n, int64(1000+i)))
		if res.BaseOffset != next || res.LastOffset != next+int64(n)-1 || res.Records != n {
			t.Fatalf("append %d: got [%d,%d] want base %d", i, res.BaseOffset, res.LastOffset, next)
		}
		next += int64(n)
		for j := 0; j < n; j++ {
			want = append(want, fmt.Sprintf("batch-%d-record-%d", i, j))
		}
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("expected rolling into several segments, got %d", len(l.Segments()))
	}
	hs, got := readAll(t, l, 0)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("values differ:\n got %v\nwant %v", got, want)
	}
	for i := 1; i < len(hs); i++ {
		if hs[i].BaseOffset != hs[i-1].NextOffset() {
			t.Fatalf("offset gap between batches %d and %d", i-1, i)
		}
	}
	// Every offset reads from the batch that holds it.
	for off := int64(0); off < next; off++ {
		b, err := l.ReadBytes(off, 1, next, true)
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.Validate(b)
		if err != nil || h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("read at %d got batch [%d,%d] err %v", off, h.BaseOffset, h.LastOffset(), err)
		}
	}
	// maxOffset (the high watermark) hides the batches at and after it.
	hsHW, _ := readAll(t, l, 0)
	hw := hsHW[10].BaseOffset
	b, _ := l.ReadBytes(0, 1<<30, hw, true)
	parts, _ := record.Split(b)
	if len(parts) != 10 {
		t.Fatalf("read below hw %d returned %d batches, want 10", hw, len(parts))
	}
	// maxBytes: whole batches only, and at least one with minOneBatch.
	if b, _ := l.ReadBytes(0, 10, next, false); len(b) != 0 {
		t.Fatalf("maxBytes 10 without minOneBatch returned %d bytes", len(b))
	}
	if b, _ := l.ReadBytes(0, 10, next, true); len(b) != hs[0].Size() {
		t.Fatalf("minOneBatch returned %d bytes, want the first batch's %d", len(b), hs[0].Size())
	}
	for _, c := range []struct{ from, maxBytes, maxOffset int64 }{{0, 1 << 30, next}, {5, 300, next}, {7, 1 << 30, hw}, {0, 10, next}} {
		res, err := l.Read(c.from, c.maxBytes, c.maxOffset, true)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := l.ReadBytes(c.from, c.maxBytes, c.maxOffset, true)
		parts, _ := record.Split(b)
		h0, _ := record.ParseHeader(parts[0])
		hn, _ := record.ParseHeader(parts[len(parts)-1])
		if res.FirstOffset != h0.BaseOffset || res.NextOffset != hn.NextOffset() {
			t.Fatalf("read %+v: first %d next %d, batches span [%d, %d)", c, res.FirstOffset, res.NextOffset, h0.BaseOffset, hn.NextOffset())
		}
	}
	if b, _ := l.ReadBytes(next, 100, next, true); len(b) != 0 {
		t.Fatalf("read at the end returned %d bytes", len(b))
	}
	if _, err := l.Read(next+1, 100, next, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
}

func TestRejectsCorruptBatchesWhole(t *testing.T) {
	l := openLog(t, t.TempDir(), quietConfig())
	defer l.Close()
	good := batch(t, 0, 3, 1)
	bad := batch(t, 1, 3, 1)
	bad[len(bad)-1] ^= 0xff
	for name, b := range map[string][]byte{
		"bad crc":         bad,
		"good then bad":   append(append([]byte(nil), good...), bad...),
		"good then short": append(append([]byte(nil), good...), good[:20]...),
		"empty":           {},
	} {
		if _, err := l.Append(context.Background(), b, AppendOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("a rejected append left data: end %d size %d", l.LogEndOffset(), l.Size())
	}
}

func TestIdempotentProducerSequences(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, quietConfig())
	ctx := context.Background()
	first := mustAppend(t, l, idemBatch(t, 7, 0, 0, 3))
	mustAppend(t, l, idemBatch(t, 7, 0, 3, 2))
	dup, err := l.Append(ctx, idemBatch(t, 7, 0, 0, 3), AppendOptions{})
	if err != nil || !dup.Duplicate || dup.BaseOffset != first.BaseOffset || dup.LastOffset != first.LastOffset {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	if _, err := l.Append(ctx, idemBatch(t, 7, 0, 9, 1), AppendOptions{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := l.Append(ctx, idemBatch(t, 7, 1, 4, 1), AppendOptions{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	mustAppend(t, l, idemBatch(t, 7, 1, 0, 1))
	if _, err := l.Append(ctx, idemBatch(t, 7, 0, 5, 1), AppendOptions{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	end := l.LogEndOffset()
	if end != 6 {
		t.Fatalf("log end %d, want 6", end)
	}
	// State survives a clean restart (snapshot) and an unclean one (rebuilt from the log).
	for _, clean := range []bool{true, false} {
		if clean {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			l.Close()
			for _, off := range snapshotOffsets(vfs.OS{}, dir) {
				os.Remove(filepath.Join(dir, segmentName(off, snapshotExt)))
			}
		}
		l = openLog(t, dir, quietConfig())
		dup, err := l.Append(ctx, idemBatch(t, 7, 1, 0, 1), AppendOptions{})
		if err != nil || !dup.Duplicate || dup.BaseOffset != 5 {
			t.Fatalf("clean=%v: duplicate after restart: %+v %v", clean, dup, err)
		}
		if st, ok := l.Producer(7); !ok || st.Epoch != 1 || st.LastSequence != 0 {
			t.Fatalf("clean=%v: producer state %+v", clean, st)
		}
	}
	l.Close()
}

func TestReopenRebuildsIndexesAndTruncatesTornTail(t *testing.T) {
	dir := t.TempDir()
	cfg := quietConfig()
	cfg.SegmentBytes = 4000
	cfg.IndexIntervalBytes = 256
	l := openLog(t, dir, cfg)
	for i := 0; i < 60; i++ {
		mustAppend(t, l, batch(t, i, 2, int64(i)))
	}
	_, want := readAll(t, l, 0)
	end := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Lose every index and damage the checkpoint; tear the tail of the last segment.
	matches, _ := filepath.Glob(filepath.Join(dir, "*index"))
	for _, m := range matches {
		os.Remove(m)
	}
	os.WriteFile(filepath.Join(dir, checkpointFile), []byte("garbage"), 0o644)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	last := segs[len(segs)-1]
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(batch(t, 99, 2, 1)[:30])
	f.Close()

	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.LogEndOffset() != end {
		t.Fatalf("log end after recovery %d, want %d", l.LogEndOffset(), end)
	}
	_, got := readAll(t, l, 0)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("records differ after recovery")
	}
	if res := mustAppend(t, l, batch(t, 100, 1, 1)); res.BaseOffset != end {
		t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, end)
	}
}

func TestTruncateAndAdvanceStart(t *testing.T) {
	dir := t.TempDir()
	cfg := quietConfig()
	cfg.SegmentBytes = 1500
	cfg.FileDeleteDelay = time.Millisecond
	l := openLog(t, dir, cfg)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if _, err := l.Append(ctx, batch(t, i, 2, int64(i)), AppendOptions{LeaderEpoch: int32(i / 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Epochs(); len(got) != 3 || got[1] != (EpochEntry{Epoch: 1, StartOffset: 20}) {
		t.Fatalf("epochs %v", got)
	}
	if e, off := l.EndOffsetForEpoch(1); e != 1 || off != 40 {
		t.Fatalf("end offset for epoch 1: %d %d", e, off)
	}
	if e, off := l.EndOffsetForEpoch(5); e != 2 || off != 60 {
		t.Fatalf("end offset for epoch 5: %d %d", e, off)
	}
	if err := l.Truncate(35); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 34 {
		t.Fatalf("truncate to 35 (mid-batch) left end %d, want 34", l.LogEndOffset())
	}
	if got := l.Epochs(); len(got) != 2 {
		t.Fatalf("epochs after truncate %v", got)
	}
	if res := mustAppend(t, l, batch(t, 50, 1, 1)); res.BaseOffset != 34 {
		t.Fatalf("append after truncate at %d", res.BaseOffset)
	}
	if err := l.AdvanceStartOffset(25); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(10, 100, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if segs := l.Segments(); segs[0].BaseOffset > 25 || segs[0].NextOffset <= 25 {
		t.Fatalf("segments below the start were not deleted or too many were: %+v", segs[0])
	}
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != 25 || l.LogEndOffset() != 35 {
		t.Fatalf("after reopen start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
}

func TestTimestampLookups(t *testing.T) {
	cfg := quietConfig()
	cfg.SegmentBytes = 1200
	cfg.IndexIntervalBytes = 200
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 50; i++ {
		mustAppend(t, l, batch(t, i, 4, int64(100*i))) // record timestamps 100i .. 100i+3
	}
	cases := []struct{ ts, off, rts int64 }{{0, 0, 0}, {1, 1, 1}, {4, 4, 100}, {2502, 102, 2502}, {4903, 199, 4903}}
	for _, c := range cases {
		off, rts, ok, err := l.OffsetForTimestamp(c.ts)
		if err != nil || !ok || off != c.off || rts != c.rts {
			t.Errorf("ts %d: got off %d ts %d ok %v err %v; want %d %d", c.ts, off, rts, ok, err, c.off, c.rts)
		}
	}
	if _, _, ok, _ := l.OffsetForTimestamp(5000); ok {
		t.Error("found a record after the newest timestamp")
	}
	if ts, off := l.MaxTimestamp(); ts != 4903 || off != 199 {
		t.Errorf("max timestamp %d at %d", ts, off)
	}
}

func TestLogAppendTime(t *testing.T) {
	cfg := quietConfig()
	cfg.Now = func() time.Time { return time.UnixMilli(777000) }
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	if _, err := l.Append(context.Background(), batch(t, 0, 2, 5), AppendOptions{LogAppendTime: true}); err != nil {
		t.Fatal(err)
	}
	hs, _ := readAll(t, l, 0)
	if hs[0].TimestampType() != 1 || hs[0].MaxTimestamp != 777000 {
		t.Fatalf("header %+v", hs[0])
	}
}

func TestFailedWriteLeavesLogReadable(t *testing.T) {
	cfg := quietConfig()
	faulty := vfs.NewFaulty(vfs.OS{})
	cfg.FS = faulty
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	mustAppend(t, l, batch(t, 0, 2, 1))
	// A short write, as on a full disk.
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Kind: vfs.FaultShortWrite, Err: syscall.ENOSPC, Times: 1})
	if _, err := l.Append(context.Background(), batch(t, 1, 2, 1), AppendOptions{}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if faulty.Fired() != 1 {
		t.Fatalf("%d faults fired, want 1", faulty.Fired())
	}
	if _, vals := readAll(t, l, 0); len(vals) != 2 {
		t.Fatalf("after the failed write the log reads %v", vals)
	}
	if res := mustAppend(t, l, batch(t, 2, 1, 1)); res.BaseOffset != 2 {
		t.Fatalf("next append at %d", res.BaseOffset)
	}
	if _, vals := readAll(t, l, 0); len(vals) != 3 {
		t.Fatalf("after recovery from the failed write the log reads %v", vals)
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	cfg := quietConfig()
	cfg.SegmentBytes = 20000
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.Append(ctx, batch(t, w*1000+i, 2, 1), AppendOptions{}); err != nil {
					t.Error(err)
					return
				}
				if d := l.DurableOffset(); d < 0 {
					t.Error("negative durable offset")
				}
			}
		}(w)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ctx.Err() == nil && l.LogEndOffset() < writers*each*2 {
			end := l.LogEndOffset()
			b, err := l.ReadBytes(0, 1<<30, end, true)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := record.Split(b); err != nil {
				t.Errorf("a concurrent read saw torn bytes: %v", err)
				return
			}
			select {
			case <-l.Changed():
			case <-ctx.Done():
			}
		}
	}()
	wg.Wait()
	<-readerDone
	if l.LogEndOffset() != writers*each*2 || l.DurableOffset() != writers*each*2 {
		t.Fatalf("end %d durable %d", l.LogEndOffset(), l.DurableOffset())
	}
}

func TestRollsByAgeNotByRecordTimestamps(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	cfg := quietConfig()
	cfg.SegmentMs = time.Hour
	cfg.Now = func() time.Time { return now }
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 5; i++ {
		mustAppend(t, l, batch(t, i, 1, 1)) // ancient record timestamps must not roll
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before segment.ms passed", n)
	}
	now = now.Add(time.Hour)
	mustAppend(t, l, batch(t, 5, 1, 1))
	if segs := l.Segments(); len(segs) != 2 || segs[1].BaseOffset != 5 {
		t.Fatalf("no roll after segment.ms: %+v", segs)
	}
}
