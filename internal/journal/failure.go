package journal

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Disk errors (issue 8). After an I/O error on a segment write or an fsync, the log is
// failed: every later append, replicated append, truncation and durability wait returns an
// error wrapping ErrStorage (and ErrLogFailed), and only a reopen (a broker restart) clears
// it. An fsync error cannot be retried: the kernel may already have dropped the dirty pages
// it failed to write and marked them clean (PostgreSQL's "fsyncgate"), so a later fsync
// that succeeds proves nothing. Reads keep serving what was written before.
//
// Two kinds of error do not fail the log:
//   - ENOSPC/EDQUOT on a write: the partial write was cut back (writeLocked), the log is
//     intact and usable once space is freed; the error wraps ErrStorage and ErrDiskFull so
//     the broker can move leadership away while it persists.
//   - a read error: it wraps ErrStorage for this read only. A single bad sector must not
//     take the whole partition offline while the rest of it reads fine; the scrubber and
//     the fetch path report damage found by reading, and the broker counts storage errors.

// ErrStorage wraps every error caused by the disk rather than by the caller's input: the
// broker answers KAFKA_STORAGE_ERROR for it.
var ErrStorage = errors.New("storage error")

// ErrDiskFull: an append found no space left on the device. The log is not failed.
var ErrDiskFull = errors.New("no space left on the device")

// Failure is the I/O error that failed the log, nil while it is healthy.
func (l *Log) Failure() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.failed == nil {
		return nil
	}
	return l.failedErrorLocked()
}

// failedErrorLocked is the error operations return on a failed log.
func (l *Log) failedErrorLocked() error {
	return fmt.Errorf("%w: %w: %v", ErrStorage, ErrLogFailed, l.failed)
}

// failLocked puts the log in the failed state with cause, logging it once.
func (l *Log) failLocked(cause error) {
	if l.failed != nil {
		return
	}
	l.failed = cause
	l.logger.Error("journal failed after an I/O error; the partition must be taken offline until restart", "dir", l.dir, "err", cause)
	l.notifyLocked()
}

// diskFull reports errors that mean the device is out of space (or quota).
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// writeError classifies a failed segment write: full disks are reported as such and leave
// the log usable when the partial write was undone; anything else fails the log.
func (l *Log) writeErrorLocked(err error, undone bool) error {
	if diskFull(err) && undone {
		return fmt.Errorf("%w: %w: %w", ErrStorage, ErrDiskFull, err)
	}
	l.failLocked(err)
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// readError marks a failed read of segment bytes as a storage error. A short read (the
// segment was cut under the reader by truncation or retention) is not one.
func readError(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}
