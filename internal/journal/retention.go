package journal

import "time"

// Retention is what cleanup.policy=delete keeps: segments are deleted whole, oldest first,
// while they are older than Ms or the partition is larger than Bytes. A negative value
// means no limit.
type Retention struct {
	Ms    time.Duration // retention.ms
	Bytes int64         // retention.bytes, per partition
}

// ApplyRetention deletes the oldest closed segments that Retention no longer keeps and moves
// the log start offset to the first record kept. The active segment is never deleted.
// As in Kafka, a segment's age is that of its largest record timestamp (an empty segment is
// as old as can be), and deletion stops at the first segment that must stay. It returns the
// number of segments deleted.
func (l *Log) ApplyRetention(r Retention) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	now := l.cfg.Now().UnixMilli()
	var total int64
	for _, s := range l.segments {
		total += s.size.Load()
	}
	n := 0
	for ; n < len(l.segments)-1; n++ {
		s := l.segments[n]
		size := s.size.Load()
		expired := r.Ms >= 0 && (size == 0 || now-s.maxTimestamp > r.Ms.Milliseconds())
		oversize := r.Bytes >= 0 && total-size >= r.Bytes
		if !expired && !oversize {
			break
		}
		total -= size
	}
	if n == 0 {
		return 0, nil
	}
	start := l.segments[n].base
	if start <= l.logStart {
		return 0, nil
	}
	before := len(l.segments)
	if err := l.advanceStartLocked(start); err != nil {
		return 0, err
	}
	return before - len(l.segments), nil
}
