package vfs

import (
	"bytes"
	"math/rand/v2"
)

// CrashClone returns a new Mem holding exactly what survives a power loss at this instant:
// every directory as of its last SyncDir, every file reachable through those names with the
// bytes of its last Sync. The receiver is unchanged and may go on being used; the clone
// shares nothing with it.
func (m *Mem) CrashClone() *Mem { return m.crashClone(nil) }

// CrashCloneRandom is CrashClone where, as write-back and the file system's own journal
// may have run before the power went, some of what was not synced survives too: each
// directory keeps either its synced or its current entries, and each file keeps its synced
// bytes plus a random prefix of what was written since (when the file has only grown since
// its last Sync; otherwise the common prefix of its synced and current bytes plus a random
// prefix of the rest). Synced bytes reachable through synced names are lost only where the
// program itself overwrote or truncated them since.
func (m *Mem) CrashCloneRandom(rng *rand.Rand) *Mem { return m.crashClone(rng) }

func (m *Mem) crashClone(rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &cloner{rng: rng, seen: map[memNode]memNode{}}
	return &Mem{root: c.dir(m.root), now: m.now}
}

// cloner copies what survives, keeping one copy of a file reachable through two names.
type cloner struct {
	rng  *rand.Rand
	seen map[memNode]memNode
}

func (c *cloner) dir(d *memDir) *memDir {
	if n, ok := c.seen[d]; ok {
		return n.(*memDir)
	}
	out := newMemDir(d.modTime)
	c.seen[d] = out
	survivors := d.synced
	if c.rng != nil && c.rng.IntN(2) == 0 {
		survivors = d.entries // the file system committed this directory's changes anyway
	}
	for name, n := range survivors {
		var cn memNode
		switch n := n.(type) {
		case *memDir:
			cn = c.dir(n)
		case *memFile:
			cn = c.file(n)
		}
		out.entries[name] = cn
		out.synced[name] = cn
	}
	return out
}

func (c *cloner) file(f *memFile) *memFile {
	if n, ok := c.seen[f]; ok {
		return n.(*memFile)
	}
	data := f.synced
	if c.rng != nil {
		data = c.partial(f)
	}
	out := &memFile{data: bytes.Clone(data), modTime: f.modTime}
	if out.data == nil {
		out.data = []byte{}
	}
	out.synced = bytes.Clone(out.data)
	c.seen[f] = out
	return out
}

// partial picks what a file holds when write-back ran for part of what was not synced.
func (c *cloner) partial(f *memFile) []byte {
	common := 0
	for common < len(f.synced) && common < len(f.data) && f.synced[common] == f.data[common] {
		common++
	}
	if common < len(f.synced) && c.rng.IntN(2) == 0 {
		return f.synced // the overwrite or truncation never reached the disk
	}
	return f.data[:common+c.rng.IntN(len(f.data)-common+1)]
}
