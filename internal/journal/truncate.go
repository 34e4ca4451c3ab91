package journal

import (
	"fmt"
	"time"
)

// Truncate removes every record at or after offset, as a follower does after a leader
// change. The batch holding offset goes too, so the new end is a batch boundary <= offset.
// Crash safety: later segments are removed newest first and the cut segment is fsynced
// before the checkpoint moves, so a crash leaves a prefix of the old log, never a hole.
func (l *Log) Truncate(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset >= l.logEnd {
		// Nothing to cut, but damage recorded at the end (records found missing at Open)
		// is repaired from here on by copying from the leader.
		l.forgetDamageFrom(l.logEnd)
		return nil
	}
	// An I/O error part way leaves the files in a state nobody planned for: the log fails,
	// as after a failed write, and the broker takes the replica offline until restart.
	fail := func(err error) error {
		l.failLocked(err)
		return fmt.Errorf("truncate to %d: %w: %w", offset, ErrStorage, err)
	}
	for len(l.segments) > 1 && l.segments[len(l.segments)-1].base >= offset {
		if err := l.removeSegmentLocked(len(l.segments) - 1); err != nil {
			return fail(err)
		}
	}
	seg := l.segments[len(l.segments)-1]
	pos, _, err := seg.lookup(seg.index, offset, seg.size.Load())
	if err != nil {
		return fmt.Errorf("truncate to %d: %w", offset, err)
	}
	if err := seg.truncateTo(pos, l.cfg.IndexIntervalBytes); err != nil {
		return fail(err)
	}
	if err := seg.file.Sync(); err != nil {
		return fail(err)
	}
	l.logEnd = seg.next
	l.forgetDamageFrom(l.logEnd)
	if l.logStart > l.logEnd {
		l.logStart = l.logEnd
	}
	l.cleaner.truncateFrom(l.logEnd)
	// Producer state as of the new end, as Kafka's UnifiedLog.truncateTo reloads it: the
	// newest snapshot at or below it (those past it are removed), then the batches after
	// it, so that the epochs and coordinator epochs of markers now gone are taken back.
	table, at := loadLatestSnapshot(l.fs, l.dir, l.logEnd)
	l.producers = table
	l.scanHeaders(max(at, l.segments[0].base), l.producers.update)
	// Markers past the new end are gone, so transactions they ended are open again.
	l.replayTxnsLocked(l.logEnd)
	if l.epochs.truncateFrom(l.logEnd) {
		if err := l.epochs.save(l.fs, l.dir); err != nil {
			return err
		}
	}
	l.sync.mu.Lock()
	l.sync.synced = min(l.sync.synced, l.logEnd)
	l.sync.mu.Unlock()
	err = l.saveCheckpointLocked()
	l.notifyLocked()
	return err
}

// AdvanceStartOffset moves the log start offset forward (DeleteRecords, retention) and
// deletes the segments wholly below it, never the active one. The new start is persisted
// before any file goes, so a crash never resurrects deleted records.
func (l *Log) AdvanceStartOffset(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset <= l.logStart {
		return nil
	}
	if offset > l.logEnd {
		return fmt.Errorf("%w: start offset %d past log end %d", ErrOffsetOutOfRange, offset, l.logEnd)
	}
	return l.advanceStartLocked(offset)
}

// advanceStartLocked moves the log start to offset (logStart < offset <= logEnd).
func (l *Log) advanceStartLocked(offset int64) error {
	l.logStart = offset
	if err := l.saveCheckpointLocked(); err != nil {
		return err
	}
	if l.epochs.truncateBefore(offset) {
		if err := l.epochs.save(l.fs, l.dir); err != nil {
			return err
		}
	}
	l.dropSegmentsBelowStartLocked()
	l.notifyLocked()
	return nil
}

// dropSegmentsBelowStartLocked deletes segments whose records are all below the log start
// and that the next segment takes over from: one whose batches end below the start but
// whose successor begins past it (a gap compaction left) stays, so the first segment's
// base never passes the log start and a reopen, which starts the log no lower than the
// first segment, keeps the same log start offset.
func (l *Log) dropSegmentsBelowStartLocked() {
	for len(l.segments) > 1 && l.segments[1].base <= l.logStart {
		if err := l.removeSegmentLocked(0); err != nil {
			l.cfg.Logger.Warn("journal: deleting segment failed", "dir", l.dir, "err", err)
			return
		}
	}
}

// removeSegmentLocked takes segment i out of the log. Its file is renamed to .deleted and
// closed after FileDeleteDelay, so readers that still hold it finish their sends.
func (l *Log) removeSegmentLocked(i int) error {
	s := l.segments[i]
	if err := l.retireSegmentLocked(s); err != nil {
		return err
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		return err
	}
	l.segments = append(l.segments[:i:i], l.segments[i+1:]...)
	return nil
}

// retireSegmentLocked renames a segment's file to .deleted, removes its index files and
// schedules the file's close and removal after FileDeleteDelay. The caller takes it out of
// l.segments and fsyncs the directory.
func (l *Log) retireSegmentLocked(s *segment) error {
	if err := l.fs.Rename(s.path, s.path+".deleted"); err != nil {
		return fmt.Errorf("delete segment %d: %w", s.base, err)
	}
	offPath, timePath := s.indexPaths(l.dir)
	l.fs.Remove(offPath)
	l.fs.Remove(timePath)
	l.fs.Remove(s.txnIndexPath(l.dir))
	deletedPath := s.path + ".deleted"
	p := &pendingDelete{seg: s}
	p.timer = time.AfterFunc(l.cfg.FileDeleteDelay, func() {
		s.file.Close()
		l.fs.Remove(deletedPath)
		l.mu.Lock()
		for j, q := range l.deleting {
			if q == p {
				l.deleting = append(l.deleting[:j:j], l.deleting[j+1:]...)
				break
			}
		}
		l.mu.Unlock()
	})
	l.deleting = append(l.deleting, p)
	return nil
}
