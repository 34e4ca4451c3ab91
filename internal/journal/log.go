package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// Log is one partition's log on disk. All methods are safe for concurrent use; reads never
// wait for appends.
type Log struct {
	dir string
	fs  vfs.FS // fixed at Open

	// Fixed at Open, read without the lock.
	fsync              FsyncPolicy
	fsyncInterval      time.Duration
	checkpointInterval time.Duration
	logger             *slog.Logger
	synced             func(took time.Duration) // Config.Synced, fixed at Open

	mu        sync.RWMutex
	cfg       Config // segment settings; may change through SetConfig
	segments  []*segment
	logStart  int64
	logEnd    int64
	epochs    epochCache
	producers producerTable
	txns      openTxns      // open transactions (txn.go)
	verifying verifications // KIP-890 verifications under way (verify_txn.go)
	changed   chan struct{}
	deleting  []*pendingDelete
	closed    bool
	failed    error
	cleaner   cleanerState
	damage    damageState // lowest damaged offset found (scrub.go)
	// checkpointed is the recovery point last written (recoverypoint.go).
	checkpointed int64

	cleanMu sync.Mutex // one cleaning pass at a time
	sync    *syncer
}

type pendingDelete struct {
	seg   *segment
	timer *time.Timer
}

// Open opens the log in dir, creating it if needed, and recovers from an unclean stop:
// segments past the recovery point are validated batch by batch and a torn or corrupt tail
// is truncated; missing or damaged indexes are rebuilt.
func Open(dir string, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := vfs.MkdirAllDurably(cfg.FS, dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l := &Log{dir: dir, fs: cfg.FS, cfg: cfg, fsync: cfg.Fsync, fsyncInterval: cfg.FsyncInterval, checkpointInterval: cfg.CheckpointInterval,
		logger: cfg.Logger, synced: cfg.Synced, changed: make(chan struct{}), producers: producerTable{}, txns: openTxns{}}
	if err := l.recover(); err != nil {
		for _, s := range l.segments {
			s.file.Close()
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.sync = newSyncer(l.logEnd)
	go l.runSyncer()
	return l, nil
}

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// SetConfig changes segment and index settings at run time. The fsync policy and the
// Synced hook are fixed at Open.
func (l *Log) SetConfig(cfg Config) {
	cfg = cfg.withDefaults()
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg.Fsync, cfg.FsyncInterval, cfg.FS, cfg.Synced = l.cfg.Fsync, l.cfg.FsyncInterval, l.fs, l.synced
	l.cfg = cfg
}

// Close syncs everything, writes indexes and checkpoints so the next Open needs no
// recovery, and closes the files. Appends and reads after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.notifyLocked()
	l.mu.Unlock()
	close(l.sync.stop)
	<-l.sync.done

	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.failed == nil {
		if err := l.syncAllLocked(); err != nil {
			errs = append(errs, err)
		} else {
			l.sync.synced = l.logEnd
			for _, s := range l.segments {
				if s.indexDirty {
					if err := s.writeIndexes(l.fs, l.dir); err != nil {
						errs = append(errs, err)
					}
				}
			}
			if err := l.producers.save(l.fs, l.dir, l.logEnd, l.txns); err != nil {
				errs = append(errs, err)
			}
			if err := l.saveCheckpointLocked(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, p := range l.deleting {
		if p.timer.Stop() {
			p.seg.file.Close()
			l.fs.Remove(p.seg.path + ".deleted")
		}
	}
	for _, s := range l.segments {
		if err := s.file.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Log) syncAllLocked() error {
	for _, s := range l.segments {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("sync segment %d: %w", s.base, err)
		}
	}
	return nil
}

// notifyLocked wakes everyone waiting on Changed.
func (l *Log) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Changed returns a channel closed at the next append, truncation, start offset move,
// durability advance or Close. Take the channel, check the state, then wait on it.
func (l *Log) Changed() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.changed
}

// LogStartOffset is the first offset that may be read.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStart
}

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logEnd
}

// Size is the number of bytes in all live segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segments {
		n += s.size.Load()
	}
	return n
}

// SegmentInfo describes one segment, for retention.
type SegmentInfo struct {
	BaseOffset, NextOffset, Size, MaxTimestamp int64
}

// Segments describes the live segments, oldest first; the last is the active one.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segments))
	for i, s := range l.segments {
		out[i] = SegmentInfo{BaseOffset: s.base, NextOffset: s.next, Size: s.size.Load(), MaxTimestamp: s.maxTimestamp}
	}
	return out
}

// Epochs returns the leader epoch history.
func (l *Log) Epochs() []EpochEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]EpochEntry(nil), l.epochs.entries...)
}

// LatestEpoch is the newest leader epoch that wrote to this log, -1 if none.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest known epoch <= epoch and the
// offset where it ended (the next epoch's start, or the log end offset). (-1, -1) if none.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.logEnd)
}

// recover loads the directory's segments and checkpoints and repairs what an unclean stop
// left behind. Runs before the Log is shared.
func (l *Log) recover() error {
	if err := recoverSwaps(l.fs, l.dir); err != nil {
		return err
	}
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".deleted"), strings.HasSuffix(name, ".tmp"):
			l.fs.Remove(filepath.Join(l.dir, name))
		default:
			if base, ok := parseSegmentName(name, ".log"); ok {
				bases = append(bases, base)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	cp, haveCP := readCheckpoint(l.fs, l.dir)
	if !haveCP && !checkpointMissing(l.fs, l.dir) {
		l.cfg.Logger.Warn("journal checkpoint damaged; validating every segment", "dir", l.dir)
	}
	if len(bases) == 0 {
		s, err := createSegment(l.fs, l.dir, cp.logStartOffset, l.cfg.Now().UnixMilli())
		if err != nil {
			return err
		}
		l.segments = []*segment{s}
		if err := syncDir(l.fs, l.dir); err != nil {
			return err
		}
	}
	for _, base := range bases {
		s, err := openSegment(l.fs, l.dir, base)
		if err != nil {
			return err
		}
		l.segments = append(l.segments, s)
	}
	// Segments from the one holding the recovery point onward are validated in full.
	verifyFrom := 0
	// Transactions are replayed from below the first segment whose indexes are rebuilt:
	// the .txnindex of every segment below it was written with its adopted .index.
	txnLimit := int64(math.MaxInt64)
	if haveCP {
		for i, s := range l.segments {
			if s.base <= cp.recoveryPoint {
				verifyFrom = i
			}
		}
	}
	for i := 0; i < len(l.segments); i++ {
		s := l.segments[i]
		verify := i >= verifyFrom
		if !verify && s.loadIndexes(l.fs, l.dir) {
			continue
		}
		txnLimit = min(txnLimit, s.base)
		res := s.rebuild(l.cfg.IndexIntervalBytes, verify, nil)
		broken := res.err
		if broken == nil && i > 0 && s.base < l.segments[i-1].next {
			broken = fmt.Errorf("%w: segment %d overlaps the previous one ending at %d", ErrCorrupt, s.base, l.segments[i-1].next)
			res.validEnd = 0
		}
		if broken == nil {
			continue
		}
		level := "torn tail"
		if !errors.Is(broken, io.ErrUnexpectedEOF) {
			level = "corrupt batch"
		}
		l.cfg.Logger.Warn("journal recovery: truncating "+level, "dir", l.dir, "segment", s.base, "position", res.validEnd, "below_recovery_point", !verify, "err", broken)
		if err := l.dropSegmentsAfter(i); err != nil {
			return err
		}
		if err := s.truncateTo(res.validEnd, l.cfg.IndexIntervalBytes); err != nil {
			return err
		}
		if res.validEnd == 0 && i > 0 {
			s.file.Close()
			l.fs.Remove(s.path)
			l.segments = l.segments[:i]
		}
		break
	}
	last := l.segments[len(l.segments)-1]
	l.logEnd = last.next
	l.logStart = max(cp.logStartOffset, l.segments[0].base)
	if l.logStart > l.logEnd {
		l.logStart = l.logEnd
	}
	// The deletion timers of the segments this retires take the lock, even during recovery.
	l.mu.Lock()
	l.dropSegmentsBelowStartLocked()
	l.mu.Unlock()

	if ep, ok := loadEpochs(l.fs, l.dir); ok {
		l.epochs = ep
	} else {
		l.scanHeaders(l.segments[0].base, func(h record.Header) { l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) })
	}
	l.epochs.truncateFrom(l.logEnd)
	l.epochs.truncateBefore(l.logStart)

	table, snapAt := loadLatestSnapshot(l.fs, l.dir, l.logEnd)
	if snapAt < 0 {
		snapAt = l.segments[0].base
	}
	l.producers = table
	l.scanHeaders(snapAt, l.producers.update)
	l.replayTxnsLocked(min(txnLimit, l.logEnd))

	l.cleaner = loadCleanerState(l.fs, l.dir)
	l.cleaner.truncateFrom(l.logEnd)

	// Everything now in the log has been validated or was synced before; make it so. The
	// closed segments rebuilt above get their indexes back before the checkpoint below
	// passes them, replacing what the crash may have torn.
	if err := l.syncAllLocked(); err != nil {
		return err
	}
	for _, s := range l.segments[:len(l.segments)-1] {
		if s.indexDirty {
			if err := s.writeIndexes(l.fs, l.dir); err != nil {
				l.cfg.Logger.Warn("journal: writing indexes failed; they will be rebuilt on open", "dir", l.dir, "err", err)
			}
		}
	}
	if err := l.epochs.save(l.fs, l.dir); err != nil {
		return err
	}
	rp := l.logEnd
	if haveCP && l.logEnd < cp.recoveryPoint {
		// Acknowledged records are gone (a file cut short, a batch damaged below the
		// recovery point): the replica must not serve or lead until it re-copies them.
		l.markLostBelowRecoveryPoint(l.logEnd, cp.recoveryPoint)
		rp = cp.recoveryPoint
	}
	l.checkpointed = rp
	return writeCheckpoint(l.fs, l.dir, checkpoint{recoveryPoint: rp, logStartOffset: l.logStart})
}

// dropSegmentsAfter deletes the segments after segment i during recovery, newest first, and
// syncs the directory before the caller cuts segment i: were the cut to reach the disk and
// the deletions not, the next Open would find them after the shortened segment, with a hole
// of lost records between that it could not tell from a compaction gap.
func (l *Log) dropSegmentsAfter(i int) error {
	later := l.segments[i+1:]
	if len(later) == 0 {
		return nil
	}
	for j := len(later) - 1; j >= 0; j-- {
		later[j].file.Close()
		if err := l.fs.Remove(later[j].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove segment %d after a damaged one: %w", later[j].base, err)
		}
	}
	l.segments = l.segments[:i+1]
	return syncDir(l.fs, l.dir)
}

// scanHeaders calls visit with the header of every batch at or after offset, in order.
// Unreadable batches end the scan (recovery has already truncated them).
func (l *Log) scanHeaders(from int64, visit func(h record.Header)) {
	l.scanBatches(from, func(_ *segment, _ int64, h record.Header) { visit(h) })
}

// scanBatches is scanHeaders that also says where each batch is.
func (l *Log) scanBatches(from int64, visit func(s *segment, pos int64, h record.Header)) {
	var buf [record.HeaderSize]byte
	for _, s := range l.segments {
		if s.next <= from {
			continue
		}
		size := s.size.Load()
		pos, _, err := s.lookup(s.index, from, size)
		for err == nil && pos < size {
			var h record.Header
			h, err = s.readHeader(pos, size, buf[:])
			if err == nil {
				visit(s, pos, h)
				pos += int64(h.Size())
			}
		}
	}
}
