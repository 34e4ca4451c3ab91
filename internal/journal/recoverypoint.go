package journal

import (
	"time"
)

// The recovery point is the offset below which every batch is known to be on disk. Open
// validates only from the segment holding it, so it is written periodically
// (Config.CheckpointInterval, Kafka's log.flush.offset.checkpoint.interval.ms), not only at
// close and truncation: after a kill -9 a restart re-validates less, and a log found
// shorter than its recovery point is known to have lost records that were acknowledged
// (issue 8: a file cut short by the OS, a damaged batch below it).

// checkpointRecoveryPoint writes the recovery point if it moved since the last write. The
// checkpoint file is written to a temporary name, fsynced and renamed, so a crash leaves the
// old or the new one, each with its checksum.
func (l *Log) checkpointRecoveryPoint() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed != nil {
		return nil
	}
	if rp := l.recoveryPointLocked(); rp == l.checkpointed {
		return nil
	}
	return l.saveCheckpointLocked()
}

// recoveryPointLocked is the recovery point to record: the durable end, but while records
// found missing at Open are not yet repaired, the older, higher recovery point, so that a
// second restart before the repair still knows they are missing.
func (l *Log) recoveryPointLocked() int64 {
	rp := min(l.sync.durable(), l.logEnd)
	if keep := l.damage.keepRecoveryPoint(); keep > rp {
		rp = keep
	}
	return rp
}

// keepRecoveryPoint is the recovery point recorded before records went missing, while that
// damage is not repaired; 0 otherwise.
func (d *damageState) keepRecoveryPoint() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.set {
		return 0
	}
	return d.lostTo
}

// markLostBelowRecoveryPoint is called by recovery when the log ends at end below the
// recovery point rp it recorded: the records in [end, rp) were on disk and are gone.
func (l *Log) markLostBelowRecoveryPoint(end, rp int64) {
	l.MarkDamaged(end)
	l.damage.mu.Lock()
	l.damage.lostTo = rp
	l.damage.mu.Unlock()
	l.cfg.Logger.Error("journal recovery: the log ends below its recovery point; records that were on disk are missing",
		"dir", l.dir, "log_end", end, "recovery_point", rp)
}

// checkpointTicker is the periodic checkpoint's clock, nil when disabled.
func (l *Log) checkpointTicker() (<-chan time.Time, func()) {
	if l.checkpointInterval <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(l.checkpointInterval)
	return t.C, t.Stop
}
