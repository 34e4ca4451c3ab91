package journal

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// The tests here run a log on vfs.Mem, cut the power at a random file-system operation
// while appenders (and retention, the cleaner or a truncation) are running, reopen the log
// on what survived and check that nothing acknowledged is lost and nothing invalid is kept.

const memCrashDir = "/data/topic-0"

// memCrashIterations is how many seeds each variant runs.
func memCrashIterations() int {
	if testing.Short() {
		return 60
	}
	return 200
}

// memDataDir returns a Mem whose data directory exists durably, as the broker leaves it.
func memDataDir(t testing.TB) *vfs.Mem {
	m := vfs.NewMem()
	if err := m.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return m
}

func memCrashConfig(policy FsyncPolicy) Config {
	cfg := quietConfig()
	cfg.Fsync = policy
	cfg.FsyncInterval = time.Millisecond
	cfg.SegmentBytes = 2048 // a roll every few appends
	cfg.IndexIntervalBytes = 256
	cfg.FileDeleteDelay = 0
	return cfg
}

// keyedBatch is a batch of 1-3 records whose keys are unique, so compaction keeps them all.
func keyedBatch(t testing.TB, rng *rand.Rand, name string) []byte {
	n := 1 + rng.IntN(3)
	recs := make([]record.Record, n)
	for i := range recs {
		v := fmt.Sprintf("%s-r%d-%s", name, i, strings.Repeat("x", rng.IntN(300)))
		recs[i] = record.Record{OffsetDelta: int32(i), Key: []byte(fmt.Sprintf("%s-r%d", name, i)), Value: []byte(v)}
	}
	b, err := record.Build(record.Header{BaseTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logContents reads the whole log, checking that every batch is valid and that offsets
// only go up, and returns the batches by base offset.
func logContents(t testing.TB, what string, l *Log) map[int64][]byte {
	t.Helper()
	b, err := l.ReadBytes(l.LogStartOffset(), 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatalf("read the reopened log: %v", err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatalf("reopened log holds torn bytes: %v", err)
	}
	out := map[int64][]byte{}
	next := int64(-1)
	for _, p := range parts {
		h, err := record.Validate(p)
		if err != nil {
			t.Fatalf("reopened log holds an invalid batch: %v", err)
		}
		if h.BaseOffset < next {
			t.Fatalf("batch at %d overlaps the one before, ending at %d", h.BaseOffset, next)
		}
		next = h.NextOffset()
		out[h.BaseOffset] = p
	}
	if len(parts) > 0 && next != l.LogEndOffset() {
		t.Fatalf("%s: last batch ends at %d, log end offset is %d; segments %+v", what, next, l.LogEndOffset(), l.Segments())
	}
	return out
}

// crashState is what the test knew at the instant of the crash.
type crashState struct {
	fs       *vfs.Mem
	acked    map[int64][]byte // appends acknowledged before the crash, by base offset
	durable  int64            // the syncer's durable end offset
	start    int64            // a log start offset that AdvanceStartOffset had returned from
	maxStart int64            // the largest log start offset requested
}

// reopenChecked opens the crashed file system twice more (once after another crash right
// after recovery, once after a clean close) and checks each sees the same log.
func reopenChecked(t testing.TB, cs crashState, cfg Config) (*Log, map[int64][]byte) {
	t.Helper()
	// What a power loss leaves is never damage: debug verify must say so before Open repairs it.
	if rep, err := VerifyFS(cs.fs, memCrashDir); err == nil && rep.IsDamaged() {
		t.Fatalf("verify calls a crashed log damaged: %+v", rep.Problems)
	}
	cfg.FS = cs.fs
	l, err := Open(memCrashDir, cfg)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	got := logContents(t, "recovered", l)
	start, end := l.LogStartOffset(), l.LogEndOffset()
	// Recovery's repairs must themselves be durable: crash again at once.
	again := cfg
	again.FS = cs.fs.CrashClone()
	l2, err := Open(memCrashDir, again)
	if err != nil {
		t.Fatalf("reopen after a crash right after recovery: %v", err)
	}
	if l2.LogStartOffset() != start || l2.LogEndOffset() != end || !maps.EqualFunc(logContents(t, "recovered twice", l2), got, bytes.Equal) {
		t.Fatalf("second recovery differs: [%d, %d) vs [%d, %d)", l2.LogStartOffset(), l2.LogEndOffset(), start, end)
	}
	l2.Close()
	if err := l.Close(); err != nil {
		t.Fatalf("close the recovered log: %v", err)
	}
	l, err = Open(memCrashDir, cfg)
	if err != nil {
		t.Fatalf("reopen after a clean close: %v", err)
	}
	if l.LogStartOffset() != start || l.LogEndOffset() != end || !maps.EqualFunc(logContents(t, "reopened", l), got, bytes.Equal) {
		t.Fatalf("reopen after a clean close differs")
	}
	return l, got
}

type memCrashVariant struct {
	name      string
	fsync     FsyncPolicy
	partial   bool // unsynced appends may survive in part
	retention bool // AdvanceStartOffset runs alongside the appenders
	clean     bool // the cleaner merges closed segments alongside the appenders
}

func TestMemCrashAppends(t *testing.T) {
	variants := []memCrashVariant{
		{name: "always", fsync: FsyncAlways},
		{name: "always-partial", fsync: FsyncAlways, partial: true},
		{name: "always-retention", fsync: FsyncAlways, retention: true},
		{name: "always-cleaner", fsync: FsyncAlways, clean: true},
		{name: "always-cleaner-partial", fsync: FsyncAlways, clean: true, partial: true},
		{name: "interval", fsync: FsyncInterval},
		{name: "interval-partial", fsync: FsyncInterval, partial: true},
		{name: "never-partial", fsync: FsyncNever, partial: true},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for seed := range uint64(memCrashIterations()) {
				runMemCrash(t, v, seed)
				if t.Failed() {
					t.Fatalf("seed %d failed", seed)
				}
			}
		})
	}
}

func runMemCrash(t *testing.T, v memCrashVariant, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := memDataDir(t)
	cp := &crashPointFS{FS: m, at: 1 + rng.IntN(600)}
	cfg := memCrashConfig(v.fsync)
	cfg.FS = cp

	var mu sync.Mutex // guards acked, start, maxStart and cs
	acked := map[int64][]byte{}
	var start, maxStart int64
	var cs crashState
	var live atomic.Pointer[Log]
	cloneRng := rand.New(rand.NewPCG(seed, 8))
	cp.fire = func() {
		mu.Lock()
		defer mu.Unlock()
		cs = crashState{acked: maps.Clone(acked), start: start, maxStart: maxStart}
		if l := live.Load(); l != nil {
			cs.durable = l.sync.durable()
		}
		if v.partial {
			cs.fs = m.CrashCloneRandom(cloneRng)
		} else {
			cs.fs = m.CrashClone()
		}
	}
	l, err := Open(memCrashDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	live.Store(l)

	// writers are the appenders; wg also holds the retention and cleaner loops, which
	// stop when the crash point fires or, should the appenders finish before it does, when
	// they have (else a run whose writes never reach the crash point would spin forever).
	var wg, writers sync.WaitGroup
	var finished atomic.Bool
	done := func() bool { cp.mu.Lock(); defer cp.mu.Unlock(); return cp.fired || finished.Load() }
	for w := range 3 {
		wg.Add(1)
		writers.Add(1)
		go func() {
			defer wg.Done()
			defer writers.Done()
			wrng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; i < 150 && !done(); i++ {
				b := keyedBatch(t, wrng, fmt.Sprintf("w%d-%d", w, i))
				res, err := l.Append(context.Background(), b, AppendOptions{LeaderEpoch: 1})
				if err != nil {
					return // the log may fail or close once the crash has been taken
				}
				mu.Lock()
				acked[res.BaseOffset] = b
				mu.Unlock()
			}
		}()
	}
	if v.retention {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done() {
				time.Sleep(200 * time.Microsecond)
				to := l.LogEndOffset() * 2 / 3
				mu.Lock()
				maxStart = max(maxStart, to)
				mu.Unlock()
				if l.AdvanceStartOffset(to) == nil {
					mu.Lock()
					start = max(start, to)
					mu.Unlock()
				}
			}
		}()
	}
	if v.clean {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewCleaner(CleanerConfig{DedupeBufferSize: 1 << 20})
			for !done() {
				time.Sleep(200 * time.Microsecond)
				c.Clean(context.Background(), l, Compaction{Force: true})
			}
		}()
	}
	writers.Wait()
	finished.Store(true)
	wg.Wait()
	cp.fireNow()
	l.Close()
	l2, got := reopenChecked(t, cs, memCrashConfig(v.fsync))
	defer l2.Close()
	checkNoHoles(t, got)

	logStart, logEnd := l2.LogStartOffset(), l2.LogEndOffset()
	// A start advanced past what was synced (the test advances it to 2/3 of the log end,
	// durable or not; the broker never passes the high watermark) can come back only as far
	// as the recovered log end: Open clamps it there.
	if logStart < min(cs.start, logEnd) || (logStart > cs.maxStart && logStart > 0) {
		t.Errorf("seed %d: log start %d after the crash; %d was persisted and at most %d requested", seed, logStart, cs.start, cs.maxStart)
	}
	if want := max(cs.durable, logStart); logEnd < want && v.fsync != FsyncNever {
		t.Errorf("seed %d: log ends at %d after the crash, but offsets below %d were synced", seed, logEnd, want)
	}
	for off, want := range cs.acked {
		if off < logStart {
			continue
		}
		synced := v.fsync == FsyncAlways || off+int64(recordCount(want)) <= cs.durable
		b, ok := got[off]
		switch {
		case !ok && synced:
			t.Errorf("seed %d: acknowledged batch at offset %d lost (log [%d, %d), durable %d)", seed, off, logStart, logEnd, cs.durable)
		case ok && !bytes.Equal(b, want):
			t.Errorf("seed %d: batch at offset %d differs from the acknowledged one", seed, off)
		}
	}
}

// checkNoHoles fails when a batch does not start where the one before it ended: with every
// key unique nothing is compacted away, so a gap is a lost stretch of the log.
func checkNoHoles(t testing.TB, got map[int64][]byte) {
	t.Helper()
	offsets := slices.Sorted(maps.Keys(got))
	for i := 1; i < len(offsets); i++ {
		prev := offsets[i-1] + int64(recordCount(got[offsets[i-1]]))
		if offsets[i] != prev {
			t.Fatalf("hole in the recovered log: a batch ends at %d, the next starts at %d", prev, offsets[i])
		}
	}
}

func recordCount(b []byte) int {
	h, err := record.ParseHeader(b)
	if err != nil {
		return 0
	}
	return int(h.RecordCount)
}

// TestMemCrashDuringTruncate crashes at every step of a Truncate and of the appends that
// follow it: offsets below the truncation point survive as acknowledged; at and above it
// the log holds either the old batches, the new acknowledged ones, or nothing, never a mix
// with a hole and never anything invalid.
func TestMemCrashDuringTruncate(t *testing.T) {
	for seed := range uint64(memCrashIterations()) {
		rng := rand.New(rand.NewPCG(seed, 9))
		m := memDataDir(t)
		cp := &crashPointFS{FS: m, at: 1 << 30}
		cfg := memCrashConfig(FsyncAlways)
		cfg.FS = cp
		l, err := Open(memCrashDir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := map[int64][]byte{}
		for i := range 10 + rng.IntN(30) {
			b := keyedBatch(t, rng, fmt.Sprintf("before-%d", i))
			before[mustAppend(t, l, b).BaseOffset] = b
		}
		cut := rng.Int64N(l.LogEndOffset())
		var mu sync.Mutex // guards after and truncated: the crash may be taken by the syncer
		after := map[int64][]byte{}
		var cs crashState
		truncated, truncatedAtCrash := false, false
		cp.fire = func() {
			// What was acknowledged is read before the disk is cloned: an acknowledgement
			// that arrives in between was not there at the crash.
			mu.Lock()
			acked, wasTruncated := maps.Clone(after), truncated
			mu.Unlock()
			cs = crashState{fs: m.CrashClone(), acked: acked}
			truncatedAtCrash = wasTruncated
		}
		cp.rearm(1 + rng.IntN(40))
		if err := l.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		truncated = true
		mu.Unlock()
		for i := range 5 {
			b := keyedBatch(t, rng, fmt.Sprintf("after-%d", i))
			off := mustAppend(t, l, b).BaseOffset
			mu.Lock()
			after[off] = b
			mu.Unlock()
		}
		cp.fireNow()
		l.Close()

		l2, got := reopenChecked(t, cs, memCrashConfig(FsyncAlways))
		checkNoHoles(t, got)
		end := l2.LogEndOffset()
		l2.Close()
		for off, want := range before {
			b, ok := got[off]
			if off+int64(recordCount(want)) <= cut {
				if !ok || !bytes.Equal(b, want) {
					t.Fatalf("seed %d: batch at %d below the truncation point %d lost or changed", seed, off, cut)
				}
				continue
			}
			if ok && !bytes.Equal(b, want) && !strings.Contains(string(b), "after-") {
				t.Fatalf("seed %d: batch at %d is neither the old one nor a new one", seed, off)
			}
			if ok && truncatedAtCrash && bytes.Equal(b, want) {
				t.Fatalf("seed %d: batch at %d survived a Truncate(%d) that had returned", seed, off, cut)
			}
		}
		for off, want := range cs.acked {
			if b, ok := got[off]; !ok || !bytes.Equal(b, want) {
				t.Fatalf("seed %d: batch at %d acknowledged after the truncation lost (log end %d)", seed, off, end)
			}
		}
	}
}

// TestMemCrashDuringRecoveryOfDamage cuts a closed segment in the middle of a batch behind
// the log's back, then crashes at every step of the Open that repairs it: whatever step
// the crash hits, the next Open finds a prefix of the log ending inside the damaged
// segment, with no later segment left behind a hole.
func TestMemCrashDuringRecoveryOfDamage(t *testing.T) {
	for step := 1; ; step++ {
		m := memDataDir(t)
		cfg := memCrashConfig(FsyncAlways)
		cfg.FS = m
		l := openLog(t, memCrashDir, cfg)
		for i := range 40 {
			mustAppend(t, l, batch(t, i, 2, 1))
		}
		segs := l.Segments()
		l.Close()
		victim := segs[1]
		f, err := m.OpenFile(filepath.Join(memCrashDir, segmentName(victim.BaseOffset, ".log")), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(victim.Size - 7)
		f.Sync()
		f.Close()

		var crashed *vfs.Mem
		cp := &crashPointFS{FS: m, at: step, fire: func() { crashed = m.CrashClone() }}
		cfg.FS = cp
		l = openLog(t, memCrashDir, cfg)
		l.Close()
		if crashed == nil {
			return // the crash point lay past the whole recovery: every step was tried
		}
		cfg.FS = crashed
		l2 := openLog(t, memCrashDir, cfg)
		after := l2.Segments()
		end := l2.LogEndOffset()
		logContents(t, "recovered", l2)
		l2.Close()
		if last := after[len(after)-1]; last.BaseOffset > victim.BaseOffset || end >= victim.NextOffset {
			t.Fatalf("crash at step %d of recovery: segments %+v remain, log ends at %d; the damaged segment held [%d, %d)",
				step, after, end, victim.BaseOffset, victim.NextOffset)
		}
	}
}
