package journal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/strand-data/strand/internal/vfs"
)

// The tests here inject disk faults with vfs.Faulty under a log on vfs.Mem and check that
// a fault fails the operation that met it, never corrupts what was there before, and that
// silent corruption is caught before it is served as good data.

// faultyLog opens a log on a Faulty over a fresh Mem holding n appended batches.
func faultyLog(t *testing.T, n int) (*Log, *vfs.Faulty, *vfs.Mem, Config) {
	t.Helper()
	m := memDataDir(t)
	faulty := vfs.NewFaulty(m)
	cfg := memCrashConfig(FsyncAlways)
	cfg.FS = faulty
	l := openLog(t, memCrashDir, cfg)
	for i := range n {
		mustAppend(t, l, batch(t, i, 2, 1))
	}
	return l, faulty, m, cfg
}

// segmentBytes is the size of every segment file on fs.
func segmentSizes(t *testing.T, fs vfs.FS) map[string]int64 {
	t.Helper()
	ents, err := fs.ReadDir(memCrashDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			st, _ := fs.Stat(filepath.Join(memCrashDir, e.Name()))
			out[e.Name()] = st.Size()
		}
	}
	return out
}

func TestFaultWriteEIOFailsLogAndKeepsData(t *testing.T) {
	l, faulty, m, cfg := faultyLog(t, 3)
	defer l.Close()
	_, valsBefore := readAll(t, l, 0)
	sizes := segmentSizes(t, m)
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Times: 1})
	if _, err := l.Append(context.Background(), batch(t, 9, 2, 1), AppendOptions{}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append over a failing write: %v, want EIO", err)
	}
	if end := l.LogEndOffset(); end != 6 {
		t.Fatalf("log end %d after a failed append, want 6", end)
	}
	if _, vals := readAll(t, l, 0); !slices.Equal(vals, valsBefore) {
		t.Fatalf("after a failed write the log reads %v, want %v", vals, valsBefore)
	}
	if got := segmentSizes(t, m); !maps.Equal(got, sizes) {
		t.Fatalf("segment files changed by a failed write: %v, were %v", got, sizes)
	}
	// An I/O error on write fails the log (the disk is suspect): later appends are refused
	// until the log is reopened, and what was there stays readable.
	if _, err := l.Append(context.Background(), batch(t, 3, 2, 1), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append to a failed log: %v, want ErrStorage", err)
	}
	if n := recordsAfterReopen(t, l, cfg, m); n != 6 {
		t.Fatalf("reopened log reads %d records, want 6", n)
	}
}

// recordsAfterReopen closes l, reopens its directory on fs and counts the records there.
func recordsAfterReopen(t *testing.T, l *Log, cfg Config, fs vfs.FS) int {
	t.Helper()
	l.Close()
	cfg.FS = fs
	l2 := openLog(t, memCrashDir, cfg)
	defer l2.Close()
	_, vals := readAll(t, l2, 0)
	return len(vals)
}

func TestFaultSyncEIOIsNotAcknowledged(t *testing.T) {
	l, faulty, m, cfg := faultyLog(t, 3)
	faulty.Inject(vfs.Rule{Ops: vfs.OpSync, Path: ".log", Times: 1})
	_, err := l.Append(context.Background(), batch(t, 3, 2, 1), AppendOptions{})
	if !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append whose fsync failed: %v, want ErrLogFailed", err)
	}
	// After a failed fsync the page cache cannot be trusted to reach the disk: nothing more
	// is acknowledged until a reopen, but what was synced before is still served.
	if _, err := l.Append(context.Background(), batch(t, 4, 2, 1), AppendOptions{}); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after a failed fsync: %v, want ErrLogFailed", err)
	}
	if _, vals := readAll(t, l, 0); len(vals) < 6 || vals[5] != "batch-2-record-1" {
		t.Fatalf("reads after a failed fsync: %v", vals)
	}
	if d := l.DurableOffset(); d != 6 {
		t.Fatalf("durable offset %d after a failed fsync, want 6", d)
	}
	if n := recordsAfterReopen(t, l, cfg, m.CrashClone()); n != 6 {
		t.Fatalf("after a crash the log reads %d records, want the 6 synced", n)
	}
}

func TestFaultShortWriteIsCutBack(t *testing.T) {
	l, faulty, m, _ := faultyLog(t, 3)
	defer l.Close()
	sizes := segmentSizes(t, m)
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Kind: vfs.FaultShortWrite, Err: syscall.ENOSPC, Times: 1})
	if _, err := l.Append(context.Background(), batch(t, 9, 2, 1), AppendOptions{}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append over a short write: %v, want ENOSPC", err)
	}
	if got := segmentSizes(t, m); !maps.Equal(got, sizes) {
		t.Fatalf("the half-written batch was not cut back: %v, were %v", got, sizes)
	}
	if res := mustAppend(t, l, batch(t, 3, 2, 1)); res.BaseOffset != 6 {
		t.Fatalf("next append at %d, want 6", res.BaseOffset)
	}
}

func TestFaultShortWriteThatCannotBeCutBackFailsTheLog(t *testing.T) {
	l, faulty, m, cfg := faultyLog(t, 3)
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Kind: vfs.FaultShortWrite, Times: 1})
	faulty.Inject(vfs.Rule{Ops: vfs.OpTruncate, Path: ".log", Times: 1})
	if _, err := l.Append(context.Background(), batch(t, 9, 2, 1), AppendOptions{}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append over a short write: %v, want EIO", err)
	}
	if _, err := l.Append(context.Background(), batch(t, 3, 2, 1), AppendOptions{}); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after an unrepaired short write: %v, want ErrLogFailed", err)
	}
	if _, vals := readAll(t, l, 0); len(vals) != 6 {
		t.Fatalf("a failed log still serves what it had: read %d records, want 6", len(vals))
	}
	l.Close()
	cfg.FS = m
	l2 := openLog(t, memCrashDir, cfg) // recovery cuts the torn half-batch
	defer l2.Close()
	if l2.LogEndOffset() != 6 {
		t.Fatalf("reopened log ends at %d, want 6", l2.LogEndOffset())
	}
	if res := mustAppend(t, l2, batch(t, 3, 2, 1)); res.BaseOffset != 6 {
		t.Fatalf("append after reopen at %d, want 6", res.BaseOffset)
	}
}

func TestFaultBitFlipOnWriteIsCaught(t *testing.T) {
	l, faulty, m, cfg := faultyLog(t, 2)
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Kind: vfs.FaultBitFlip, Times: 1})
	mustAppend(t, l, batch(t, 2, 2, 1)) // offsets 4 and 5: silently corrupted on the way to disk
	for i := 3; i < 40; i++ {           // roll past it, so it is in a closed segment
		mustAppend(t, l, batch(t, i, 2, 1))
	}
	res, err := l.Read(4, 1<<20, 6, true)
	if err != nil {
		t.Fatal(err)
	}
	var de *DamageError
	if err := l.ValidateRead(res); !errors.As(err, &de) || de.Damage.FirstOffset != 4 {
		t.Fatalf("ValidateRead over the flipped batch: %v, want damage at offset 4", err)
	}
	sr, err := l.Scrub(context.Background(), 0, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Damage) != 1 || sr.Damage[0].FirstOffset != 4 {
		t.Fatalf("scrub found %+v, want damage at offset 4", sr.Damage)
	}
	if from, ok := l.Damaged(); !ok || from != 4 {
		t.Fatalf("damage mark %d %v, want 4", from, ok)
	}
	// A crash before any checkpoint: recovery validates every batch and cuts the log at the
	// corrupt one, never serving it.
	cfg.FS = m.CrashClone()
	l.Close()
	l2 := openLog(t, memCrashDir, cfg)
	defer l2.Close()
	if l2.LogEndOffset() != 4 {
		t.Fatalf("recovery kept the log to %d, want it cut at the corrupt batch (4)", l2.LogEndOffset())
	}
	if rep, err := VerifyFS(cfg.FS, memCrashDir); err != nil || rep.IsDamaged() {
		t.Fatalf("after recovery verify reports %+v, %v", rep.Problems, err)
	}
}

func TestFaultReadEIOReturnsError(t *testing.T) {
	l, faulty, _, _ := faultyLog(t, 40)
	defer l.Close()
	faulty.Inject(vfs.Rule{Ops: vfs.OpRead, Path: ".log"})
	if _, err := l.ReadBytes(10, 1<<20, l.LogEndOffset(), true); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read over EIO: %v, want EIO", err)
	}
	if _, err := l.Scrub(context.Background(), 0, 1<<30, nil); err == nil {
		if from, ok := l.Damaged(); ok {
			t.Fatalf("an I/O error was taken for damage at %d", from)
		}
	}
	faulty.Clear()
	if _, vals := readAll(t, l, 0); len(vals) != 80 {
		t.Fatalf("after the fault clears the log reads %d records, want 80", len(vals))
	}
}

func TestFaultSegmentTruncatedBehindTheLogsBack(t *testing.T) {
	l, _, m, cfg := faultyLog(t, 40)
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	l.Close() // a clean close: every segment is below the recovery point
	victim := segs[1]
	f, err := m.OpenFile(filepath.Join(memCrashDir, segmentName(victim.BaseOffset, ".log")), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(victim.Size - 7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep, err := VerifyFS(m, memCrashDir)
	if err != nil || !rep.IsDamaged() {
		t.Fatalf("verify of a truncated closed segment: damaged=%v %v", rep.IsDamaged(), err)
	}
	cfg.FS = m
	l2 := openLog(t, memCrashDir, cfg)
	defer l2.Close()
	// The torn batch and everything after it go: the log stays a prefix without holes.
	if end := l2.LogEndOffset(); end >= victim.NextOffset || end < victim.BaseOffset {
		t.Fatalf("reopened log ends at %d; the cut segment held [%d, %d)", end, victim.BaseOffset, victim.NextOffset)
	}
	got := logContents(t, "reopened", l2)
	if len(got) == 0 {
		t.Fatal("reopened log is empty")
	}
}

// TestFaultSyncEIOAtRoll: the fsync of the segment a roll closes fails. The append that
// rolled fails, and nothing in flight is acknowledged afterwards, since a later fsync could
// succeed without the pages the failed one lost.
func TestFaultSyncEIOAtRoll(t *testing.T) {
	m := memDataDir(t)
	faulty := vfs.NewFaulty(m)
	cfg := memCrashConfig(FsyncNever) // only rolls and Close fsync segments
	cfg.FS = faulty
	l := openLog(t, memCrashDir, cfg)
	defer l.Close()
	faulty.Inject(vfs.Rule{Ops: vfs.OpSync, Path: ".log", Times: 1})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = l.Append(context.Background(), batch(t, i, 2, 1), AppendOptions{})
	}
	if !errors.Is(err, syscall.EIO) || faulty.Fired() != 1 {
		t.Fatalf("append whose roll fsync failed: %v (faults fired %d), want EIO", err, faulty.Fired())
	}
	if len(l.Segments()) != 1 {
		t.Fatalf("the failed roll left %d segments, want 1", len(l.Segments()))
	}
	l.sync.mu.Lock()
	syncErr := l.sync.err
	l.sync.mu.Unlock()
	if !errors.Is(syncErr, syscall.EIO) {
		t.Fatalf("the syncer's sticky error after a failed roll fsync is %v, want EIO", syncErr)
	}
	if _, err := l.Append(context.Background(), batch(t, 0, 2, 1), AppendOptions{}); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after a failed roll fsync: %v, want ErrLogFailed", err)
	}
}

// TestFaultTruncateEIOFailsTheLog: an I/O error while truncating (a segment cannot be cut
// or retired) fails the log like a failed write, so the broker takes the replica offline
// instead of retrying forever on a disk in an unknown state; a reopen finds a prefix.
func TestFaultTruncateEIOFailsTheLog(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpTruncate, vfs.OpRename} {
		t.Run(fmt.Sprint(op), func(t *testing.T) {
			l, faulty, m, cfg := faultyLog(t, 60) // 120 records over several segments
			faulty.Inject(vfs.Rule{Ops: op, Path: ".log", Times: 1})
			if err := l.Truncate(3); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("truncate over a failing %v: %v, want ErrStorage and EIO", op, err)
			}
			if l.Failure() == nil {
				t.Fatal("the log did not fail")
			}
			if err := l.Truncate(2); !errors.Is(err, ErrStorage) {
				t.Fatalf("truncate of a failed log: %v, want ErrStorage", err)
			}
			if n := recordsAfterReopen(t, l, cfg, m); n < 2 || n > 120 {
				t.Fatalf("reopened log reads %d records, want a prefix of 2 to 120", n)
			}
		})
	}
}
