package journal

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// syncer runs the log's fsyncs. Under FsyncAlways it is a group commit: waiters kick it,
// and one fdatasync covers every append that finished before it started, so appenders that
// arrive while an fsync runs share the next one.
type syncer struct {
	mu     sync.Mutex
	synced int64         // end offset known to be on disk
	round  chan struct{} // closed when the fsync round in progress (or the next) completes
	err    error         // sticky: after a failed fsync nothing more is acknowledged

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newSyncer(synced int64) *syncer {
	return &syncer{synced: synced, round: make(chan struct{}), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (s *syncer) durable() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// fail records an fsync error met outside the syncer (at a roll) and wakes the waiters:
// once an fsync has failed, a later one may succeed without the lost pages, so nothing
// more is acknowledged.
func (s *syncer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	close(s.round)
	s.round = make(chan struct{})
}

// run is the syncer goroutine, owned by the Log and stopped by Close.
func (l *Log) runSyncer() {
	s := l.sync
	defer close(s.done)
	var tick <-chan time.Time
	if l.fsync == FsyncInterval {
		t := time.NewTicker(l.fsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	checkpoint, stopCheckpoint := l.checkpointTicker()
	defer stopCheckpoint()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-tick:
		case <-checkpoint:
			if err := l.checkpointRecoveryPoint(); err != nil {
				l.logger.Warn("journal: periodic recovery point checkpoint failed", "dir", l.dir, "err", err)
			}
			continue
		}
		l.syncOnce()
	}
}

// syncOnce fsyncs the active segment and advances the durable offset. Only the active
// segment can hold unsynced appends: a roll fsyncs the segment it closes.
func (l *Log) syncOnce() error {
	l.mu.Lock()
	target := l.logEnd
	active := l.segments[len(l.segments)-1]
	l.mu.Unlock()

	s := l.sync
	s.mu.Lock()
	failed := s.err
	s.mu.Unlock()
	if failed != nil {
		// After a failed fsync nothing more is acknowledged (see fail); another fsync
		// could only make the later appends durable behind the lost pages' back.
		return failed
	}
	if s.durable() >= target {
		s.mu.Lock()
		close(s.round)
		s.round = make(chan struct{})
		s.mu.Unlock()
		return nil
	}
	var err error
	began := time.Now()
	if e := active.file.Sync(); e != nil {
		err = fmt.Errorf("fsync segment %d: %w", active.base, e)
	}
	s.mu.Lock()
	if err != nil {
		s.err = err
	} else if target > s.synced {
		s.synced = target
	}
	close(s.round)
	s.round = make(chan struct{})
	s.mu.Unlock()
	l.mu.Lock()
	if err != nil {
		l.failLocked(err)
	}
	l.notifyLocked()
	l.mu.Unlock()
	if err == nil && l.synced != nil {
		l.synced(time.Since(began))
	}
	return err
}

// kickSync starts a group commit now under FsyncAlways, so an append's fsync begins as
// soon as its bytes are written rather than when its producer's answer comes up for
// writing (after the connection's earlier answers) and waits for it.
func (l *Log) kickSync() {
	if l.fsync != FsyncAlways {
		return
	}
	select {
	case l.sync.kick <- struct{}{}:
	default:
	}
}

// WaitDurable returns once every offset below endOffset is on disk. Under FsyncInterval and
// FsyncNever it returns at once: those policies acknowledge from the page cache.
func (l *Log) WaitDurable(ctx context.Context, endOffset int64) error {
	if l.fsync != FsyncAlways {
		return nil
	}
	s := l.sync
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return fmt.Errorf("%w: %w: %v", ErrStorage, ErrLogFailed, s.err)
		}
		if s.synced >= endOffset {
			s.mu.Unlock()
			return nil
		}
		round := s.round
		s.mu.Unlock()
		l.kickSync()
		select {
		case <-round:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
}

// DurableOffset is the end offset that is on disk under FsyncAlways; under the other
// policies it is the log end offset, since they acknowledge from the page cache.
func (l *Log) DurableOffset() int64 {
	if l.fsync != FsyncAlways {
		return l.LogEndOffset()
	}
	return l.sync.durable()
}

// SyncsEachAppend reports fsync=always: appends become durable only by a later fsync round
// (and Config.Synced reports each); under the other policies they count as durable at once.
func (l *Log) SyncsEachAppend() bool { return l.fsync == FsyncAlways }
