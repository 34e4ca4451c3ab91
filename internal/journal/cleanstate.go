package journal

import (
	"encoding/binary"
	"path/filepath"
	"time"

	"github.com/strand-data/strand/internal/vfs"
)

// cleanerCheckpointFile records how far the cleaner has compacted the log and when, so
// tombstones can be timed against delete.retention.ms across restarts.
const cleanerCheckpointFile = "cleaner-checkpoint"

// cleanMark says that a cleaning pass finished at time (ms) having compacted everything
// below offset. A tombstone below a mark's offset has been through a pass: it may go once
// delete.retention.ms has passed since that mark.
type cleanMark struct {
	offset, time int64
}

// maxCleanMarks bounds the marks kept; dropping the oldest young mark only makes its
// tombstones wait for the next one, never go early.
const maxCleanMarks = 1024

// cleanerState is the cleaner's progress in one log. Guarded by the Log's mutex.
type cleanerState struct {
	cleanedTo int64 // first dirty offset: [log start, cleanedTo) holds each key at most once
	lastClean int64 // ms of the last pass, 0 if none
	horizon   int64 // tombstone horizon the last pass applied
	marks     []cleanMark
}

func (c cleanerState) encode() []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(c.cleanedTo))
	b = binary.BigEndian.AppendUint64(b, uint64(c.lastClean))
	b = binary.BigEndian.AppendUint64(b, uint64(c.horizon))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.marks)))
	for _, m := range c.marks {
		b = binary.BigEndian.AppendUint64(b, uint64(m.offset))
		b = binary.BigEndian.AppendUint64(b, uint64(m.time))
	}
	return b
}

// loadCleanerState reads the checkpoint; a missing or damaged one means nothing is known
// clean, which is always safe (the next pass rebuilds the map over the whole log and
// tombstones wait a full delete.retention.ms again).
func loadCleanerState(fs vfs.FS, dir string) cleanerState {
	b, err := readChecked(fs, filepath.Join(dir, cleanerCheckpointFile))
	if err != nil || len(b) < 29 || b[0] != 1 {
		return cleanerState{}
	}
	be := binary.BigEndian
	c := cleanerState{cleanedTo: int64(be.Uint64(b[1:])), lastClean: int64(be.Uint64(b[9:])), horizon: int64(be.Uint64(b[17:]))}
	n := int(be.Uint32(b[25:]))
	b = b[29:]
	if len(b) != n*16 {
		return cleanerState{}
	}
	for i := 0; i < n; i++ {
		c.marks = append(c.marks, cleanMark{offset: int64(be.Uint64(b[i*16:])), time: int64(be.Uint64(b[i*16+8:]))})
	}
	return c
}

// tombstoneHorizon is the offset below which tombstones may be removed now: the largest
// mark at least deleteRetention old.
func (c cleanerState) tombstoneHorizon(now int64, deleteRetention time.Duration) int64 {
	horizon := int64(0)
	for _, m := range c.marks {
		if now-m.time >= deleteRetention.Milliseconds() {
			horizon = max(horizon, m.offset)
		}
	}
	return horizon
}

// addMark records a finished pass and forgets marks no horizon will need: of the marks
// already past deleteRetention only the newest matters.
func (c *cleanerState) addMark(m cleanMark, deleteRetention time.Duration) {
	keepFrom := 0
	for i, old := range c.marks {
		if m.time-old.time >= deleteRetention.Milliseconds() {
			keepFrom = i
		}
	}
	c.marks = append(c.marks[keepFrom:], m)
	if len(c.marks) > maxCleanMarks {
		c.marks = append(c.marks[:1], c.marks[2:]...)
	}
}

// truncateFrom forgets progress past a truncation point.
func (c *cleanerState) truncateFrom(offset int64) {
	c.cleanedTo = min(c.cleanedTo, offset)
	c.horizon = min(c.horizon, offset)
	for i := range c.marks {
		c.marks[i].offset = min(c.marks[i].offset, offset)
	}
}

// CleanerStatus is a log's compaction state, for metrics.
type CleanerStatus struct {
	FirstDirty int64
	DirtyRatio float64   // bytes at or past FirstDirty / all bytes
	LastClean  time.Time // zero if never cleaned
}

// CleanerStatus reports how much of the log is dirty and when it was last cleaned.
func (l *Log) CleanerStatus() CleanerStatus {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := CleanerStatus{FirstDirty: max(l.cleaner.cleanedTo, l.logStart)}
	if l.cleaner.lastClean > 0 {
		st.LastClean = time.UnixMilli(l.cleaner.lastClean)
	}
	var dirty, total int64
	for _, s := range l.segments {
		size := s.size.Load()
		total += size
		switch {
		case s.base >= st.FirstDirty:
			dirty += size
		case s.next > st.FirstDirty:
			dirty += int64(float64(size) * float64(s.next-st.FirstDirty) / float64(s.next-s.base))
		}
	}
	if total > 0 {
		st.DirtyRatio = float64(dirty) / float64(total)
	}
	return st
}
