package journal

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/strand-data/strand/internal/vfs"
)

const epochFile = "leader-epoch-checkpoint"

// EpochEntry says that leader epoch Epoch wrote its first batch at StartOffset (KIP-101).
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochCache is the log's leader epoch history. Guarded by the Log's mutex.
type epochCache struct {
	entries []EpochEntry
}

// assign records that epoch starts at offset, if it is newer than the latest epoch.
// It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if epoch <= last.Epoch {
			return false
		}
		if offset < last.StartOffset {
			// A newer epoch cannot start before an older one: drop what it supersedes.
			c.truncateFrom(offset)
		}
	}
	c.entries = append(c.entries, EpochEntry{Epoch: epoch, StartOffset: offset})
	return true
}

// truncateFrom removes entries starting at or after offset (the log was truncated there).
func (c *epochCache) truncateFrom(offset int64) bool {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].StartOffset >= offset })
	changed := i < len(c.entries)
	c.entries = c.entries[:i]
	return changed
}

// truncateBefore moves the first entry's start up to the new log start offset.
func (c *epochCache) truncateBefore(offset int64) bool {
	changed := false
	for len(c.entries) > 1 && c.entries[1].StartOffset <= offset {
		c.entries = c.entries[1:]
		changed = true
	}
	if len(c.entries) > 0 && c.entries[0].StartOffset < offset {
		c.entries[0].StartOffset = offset
		changed = true
	}
	return changed
}

func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// endOffsetFor answers OffsetForLeaderEpoch: the largest epoch <= requested, and the start
// offset of the epoch after it (or logEnd when it is the latest).
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].Epoch > epoch })
	if i == 0 {
		return -1, -1
	}
	if i == len(c.entries) {
		return c.entries[i-1].Epoch, logEnd
	}
	return c.entries[i-1].Epoch, c.entries[i].StartOffset
}

func (c *epochCache) save(fs vfs.FS, dir string) error {
	b := []byte{1}
	for _, e := range c.entries {
		b = binary.BigEndian.AppendUint32(b, uint32(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.StartOffset))
	}
	if err := writeChecked(fs, dir, epochFile, b); err != nil {
		return fmt.Errorf("leader epochs: %w", err)
	}
	return nil
}

func loadEpochs(fs vfs.FS, dir string) (epochCache, bool) {
	b, err := readChecked(fs, filepath.Join(dir, epochFile))
	if err != nil || len(b) < 1 || b[0] != 1 || (len(b)-1)%12 != 0 {
		return epochCache{}, false
	}
	var c epochCache
	for p := 1; p < len(b); p += 12 {
		e := EpochEntry{Epoch: int32(binary.BigEndian.Uint32(b[p:])), StartOffset: int64(binary.BigEndian.Uint64(b[p+4:]))}
		if n := len(c.entries); n > 0 && (e.Epoch <= c.entries[n-1].Epoch || e.StartOffset < c.entries[n-1].StartOffset) {
			return epochCache{}, false
		}
		c.entries = append(c.entries, e)
	}
	return c, true
}
