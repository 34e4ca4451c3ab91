package partition

import "time"

// commitLogSize is how many high-watermark advances a leader remembers for CommittedAt:
// enough to cover the records a long-polling consumer is handed in one fetch.
const commitLogSize = 64

// commitLog remembers when the high watermark passed recent offsets, so the broker can
// tell how long a consumer's fetch answer came after its records were committed (the
// "committed → fetch answered" span of an end-to-end latency breakdown).
type commitLog struct {
	marks [commitLogSize]commitMark
	next  int // index of the next mark to write
	n     int // marks held, up to commitLogSize
}

type commitMark struct {
	hw int64 // the high watermark after the advance
	at time.Time
}

func (c *commitLog) add(hw int64, at time.Time) {
	c.marks[c.next] = commitMark{hw, at}
	c.next = (c.next + 1) % commitLogSize
	if c.n < commitLogSize {
		c.n++
	}
}

// reset forgets every advance, as at a change of leadership; hw is where the high
// watermark starts, a boundary for the next advance (offsets below it were committed
// before and are not reported).
func (c *commitLog) reset(hw int64) {
	c.n, c.next = 0, 0
	c.add(hw, time.Time{})
}

// at returns when the high watermark first passed offset: the time of the oldest
// remembered advance whose mark is above it, provided the advance before that one is
// remembered too (and is not above offset). ok is false when offset is not committed or
// the advance that passed it is older than the log remembers.
func (c *commitLog) at(offset int64) (time.Time, bool) {
	for i := 1; i <= c.n; i++ { // newest first
		m := c.marks[(c.next-i+commitLogSize)%commitLogSize]
		if m.hw <= offset {
			if i == 1 {
				return time.Time{}, false // not committed yet
			}
			return c.marks[(c.next-i+1+commitLogSize)%commitLogSize].at, true
		}
	}
	return time.Time{}, false
}

// CommittedAt reports when this leader's high watermark passed offset, for recent
// advances during the current leadership.
func (p *Partition) CommittedAt(offset int64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commits.at(offset)
}

// synced is the journal's Synced hook: under fsync=always the leader's high watermark
// can move as soon as an fsync completes, not when the next reader or waiter asks.
func (p *Partition) synced() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log != nil && p.leader == p.self {
		p.advanceLocked()
	}
}
