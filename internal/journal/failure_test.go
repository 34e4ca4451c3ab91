package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/vfs"
)

// faultyLogOS opens a log on the real disk through a vfs.Faulty that tests add rules to.
func faultyLogOS(t *testing.T) (*Log, *vfs.Faulty) {
	t.Helper()
	faulty := vfs.NewFaulty(vfs.OS{})
	cfg := quietConfig()
	cfg.FS = faulty
	return openLog(t, t.TempDir(), cfg), faulty
}

// TestWriteErrorFailsLog: an I/O error on a segment write fails the log: this append and
// every later one, replicated appends and truncation fail with ErrStorage, Failure says
// why, and what was written before still reads.
func TestWriteErrorFailsLog(t *testing.T) {
	l, faulty := faultyLogOS(t)
	defer l.Close()
	mustAppend(t, l, batch(t, 0, 2, 1))
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log"})
	_, err := l.Append(context.Background(), batch(t, 1, 2, 1), AppendOptions{})
	if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append on a failing disk: %v", err)
	}
	faulty.Clear()
	if f := l.Failure(); !errors.Is(f, ErrStorage) || !errors.Is(f, ErrLogFailed) {
		t.Fatalf("Failure() = %v", f)
	}
	if _, err := l.Append(context.Background(), batch(t, 2, 1, 1), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after the failure: %v", err)
	}
	if err := l.Truncate(0); !errors.Is(err, ErrStorage) {
		t.Fatalf("truncate after the failure: %v", err)
	}
	if _, vals := readAll(t, l, 0); len(vals) != 2 {
		t.Fatalf("a failed log reads %v", vals)
	}
}

// TestDiskFullDoesNotFailLog: ENOSPC is reported as ErrDiskFull (and ErrStorage) but the
// partial write is undone and the log stays usable.
func TestDiskFullDoesNotFailLog(t *testing.T) {
	l, faulty := faultyLogOS(t)
	defer l.Close()
	faulty.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: ".log", Err: syscall.ENOSPC})
	_, err := l.Append(context.Background(), batch(t, 1, 2, 1), AppendOptions{})
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, ErrStorage) {
		t.Fatalf("append on a full disk: %v", err)
	}
	faulty.Clear()
	if f := l.Failure(); f != nil {
		t.Fatalf("a full disk failed the log: %v", f)
	}
	mustAppend(t, l, batch(t, 2, 1, 1))
}

// TestFsyncErrorFailsLog: a failed fsync is never retried: the waiting append fails, and so
// does every later one, even when fsync works again (fsyncgate).
func TestFsyncErrorFailsLog(t *testing.T) {
	l, faulty := faultyLogOS(t)
	defer l.Close()
	mustAppend(t, l, batch(t, 0, 1, 1))
	faulty.Inject(vfs.Rule{Ops: vfs.OpSync, Path: ".log"})
	if _, err := l.Append(context.Background(), batch(t, 1, 1, 1), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append with a failing fsync: %v", err)
	}
	faulty.Clear()
	if f := l.Failure(); !errors.Is(f, ErrStorage) {
		t.Fatalf("Failure() = %v", f)
	}
	if _, err := l.Append(context.Background(), batch(t, 2, 1, 1), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after a failed fsync: %v", err)
	}
	if got := l.DurableOffset(); got != 1 {
		t.Fatalf("durable offset %d after a failed fsync, want 1", got)
	}
}

// TestRecoveredBelowRecoveryPointIsDamaged: the newest segment is cut short while the log
// is closed; Open finds the log ending below its recovery point and marks it damaged from
// there, still does after a second reopen, and no longer after the repair truncation.
func TestRecoveredBelowRecoveryPointIsDamaged(t *testing.T) {
	dir := t.TempDir()
	cfg := quietConfig()
	cfg.SegmentBytes = 400
	l := openLog(t, dir, cfg)
	for i := 0; i < 12; i++ {
		mustAppend(t, l, batch(t, i, 3, 1))
	}
	end := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(segs)
	fi, err := os.Stat(segs[len(segs)-1])
	if err != nil || fi.Size() < 10 {
		t.Fatalf("newest segment %v: %v", fi, err)
	}
	if err := os.Truncate(segs[len(segs)-1], fi.Size()-7); err != nil { // a torn tail, as after an OS crash
		t.Fatal(err)
	}

	l = openLog(t, dir, cfg)
	from, ok := l.Damaged()
	if !ok || from != l.LogEndOffset() || l.LogEndOffset() >= end {
		t.Fatalf("after the cut: damaged %d %v, log end %d (was %d)", from, ok, l.LogEndOffset(), end)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	if from2, ok := l.Damaged(); !ok || from2 != from {
		t.Fatalf("a second reopen forgot the damage: %d %v", from2, ok)
	}
	// The repair: truncate to the damage (nothing to cut here), then copy from the leader.
	if err := l.Truncate(from); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Damaged(); ok {
		t.Fatal("still damaged after the repair truncation")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	if _, ok := l.Damaged(); ok {
		t.Fatal("damaged again after reopening a repaired log")
	}
}

// TestPeriodicRecoveryPointCheckpoint: the recovery point is written while the log is open,
// so after a crash (no Close) it is recent.
func TestPeriodicRecoveryPointCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := quietConfig()
	cfg.CheckpointInterval = 20 * time.Millisecond
	l := openLog(t, dir, cfg)
	defer l.Close()
	for i := 0; i < 5; i++ {
		mustAppend(t, l, batch(t, i, 2, 1))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, ok := readCheckpoint(vfs.OS{}, dir)
		if ok && cp.recoveryPoint == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %+v %v, want recovery point 10", cp, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
