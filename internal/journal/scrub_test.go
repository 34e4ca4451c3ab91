package journal

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrubAll calls Scrub until it wraps, as the broker's loop does.
func scrubAll(t *testing.T, l *Log, throttle *Throttle) ScrubResult {
	t.Helper()
	var all ScrubResult
	from := int64(0)
	for i := 0; i < 1000; i++ {
		res, err := l.Scrub(context.Background(), from, 4096, throttle)
		if err != nil {
			t.Fatal(err)
		}
		all.Bytes += res.Bytes
		all.Damage = append(all.Damage, res.Damage...)
		if res.Wrapped {
			return all
		}
		from = res.Next
	}
	t.Fatal("scrub never wrapped")
	return all
}

func TestScrubCleanLog(t *testing.T) {
	dir := writeClosedLog(t)
	l := openLog(t, dir, quietConfig())
	defer l.Close()
	res := scrubAll(t, l, nil)
	var closed int64
	segs := l.Segments()
	for _, s := range segs[:len(segs)-1] {
		closed += s.Size
	}
	if len(res.Damage) != 0 || res.Bytes != closed {
		t.Fatalf("scrubbed %d bytes of %d closed, damage %+v", res.Bytes, closed, res.Damage)
	}
	if _, ok := l.Damaged(); ok {
		t.Fatal("clean log marked damaged")
	}
}

func TestScrubFindsFlippedBitAtBoundedRate(t *testing.T) {
	dir := writeClosedLog(t)
	seg := segmentPaths(t, dir)[1]
	base, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(seg), ".log"), 10, 64)
	l := openLog(t, dir, quietConfig())
	defer l.Close()
	// Flip after Open, as a disk would: recovery saw good bytes and trusted the indexes.
	flipByte(t, seg, 70)

	var closed int64
	segs := l.Segments()
	for _, s := range segs[:len(segs)-1] {
		closed += s.Size
	}
	rate := closed / 3 // a burst of one second's worth, then two more seconds at least
	began := time.Now()
	res := scrubAll(t, l, NewThrottle(rate))
	if took := time.Since(began); took < 1500*time.Millisecond {
		t.Fatalf("scrubbed %d bytes at %d B/s in %v: not bounded", closed, rate, took)
	}
	if len(res.Damage) != 1 {
		t.Fatalf("damage %+v", res.Damage)
	}
	d := res.Damage[0]
	if d.Segment != seg || d.Position != 0 || d.FirstOffset != base || d.LastOffset != base+4 || !d.New {
		t.Fatalf("damage %+v, want segment %s offsets [%d, %d]", d, seg, base, base+4)
	}
	if from, ok := l.Damaged(); !ok || from != base {
		t.Fatalf("Damaged() = %d, %v; want %d", from, ok, base)
	}
	// A second cycle finds it again but it is not new: the broker logs it once.
	again := scrubAll(t, l, nil)
	if len(again.Damage) != 1 || again.Damage[0].New {
		t.Fatalf("second cycle %+v", again.Damage)
	}
}

func TestValidateReadRejectsDamagedBatch(t *testing.T) {
	dir := writeClosedLog(t)
	seg := segmentPaths(t, dir)[1]
	base, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(seg), ".log"), 10, 64)
	l := openLog(t, dir, quietConfig())
	defer l.Close()
	flipByte(t, seg, 70)
	below, err := l.Read(0, 1<<20, base, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ValidateRead(below); err != nil {
		t.Fatalf("read below the damage: %v", err)
	}
	over, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	err = l.ValidateRead(over)
	var de *DamageError
	if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) || de.Damage.Segment != seg || de.Damage.Position != 0 || de.Damage.FirstOffset != base || !de.Damage.New {
		t.Fatalf("read over the damage: %v", err)
	}
	if from, ok := l.Damaged(); !ok || from != base {
		t.Fatalf("Damaged() = %d, %v; want %d", from, ok, base)
	}
}

func TestTruncateBelowDamageClearsIt(t *testing.T) {
	dir := writeClosedLog(t)
	l := openLog(t, dir, quietConfig())
	defer l.Close()
	l.MarkDamaged(100)
	if l.MarkDamaged(120) {
		t.Fatal("damage above the known mark reported as new")
	}
	if err := l.Truncate(110); err != nil {
		t.Fatal(err)
	}
	if from, ok := l.Damaged(); !ok || from != 100 {
		t.Fatalf("truncating above the damage cleared it: %d, %v", from, ok)
	}
	if err := l.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Damaged(); ok {
		t.Fatal("damage still marked after truncating it away")
	}
}
