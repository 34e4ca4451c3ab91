package journal

import (
	"os"
	"sync"

	"github.com/strand-data/strand/internal/vfs"
)

// crashPointFS wraps a file system and calls fire just before its at-th mutating
// operation (file creation or open, write, sync, truncation, rename, removal, directory
// sync), so a crash can be taken between any two steps of the journal, including inside
// a roll, a swap or a truncation. fire runs once, outside the wrapper's lock; fireNow
// returns only once a crash another goroutine is taking is complete (inflight).
type crashPointFS struct {
	vfs.FS
	inflight sync.WaitGroup
	mu       sync.Mutex
	ops      int
	at       int
	fired    bool
	fire     func()
}

// step counts one mutating operation and fires at the chosen one.
func (c *crashPointFS) step() {
	c.mu.Lock()
	c.ops++
	hit := !c.fired && c.ops >= c.at
	if hit {
		c.fired = true
	}
	if hit {
		c.inflight.Add(1)
	}
	c.mu.Unlock()
	if hit {
		defer c.inflight.Done()
		c.fire()
	}
}

// fireNow fires if the chosen operation never came, and otherwise waits for the crash in
// progress to be taken.
func (c *crashPointFS) fireNow() {
	c.mu.Lock()
	hit := !c.fired
	c.fired = true
	c.mu.Unlock()
	if hit {
		c.fire()
	}
	c.inflight.Wait()
}

// rearm chooses a new crash point n operations from now.
func (c *crashPointFS) rearm(n int) {
	c.mu.Lock()
	c.at, c.fired = c.ops+n, false
	c.mu.Unlock()
}

func (c *crashPointFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	c.step()
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &crashPointFile{File: f, fs: c}, nil
}

func (c *crashPointFS) Remove(name string) error { c.step(); return c.FS.Remove(name) }
func (c *crashPointFS) Rename(o, n string) error { c.step(); return c.FS.Rename(o, n) }
func (c *crashPointFS) SyncDir(dir string) error { c.step(); return c.FS.SyncDir(dir) }
func (c *crashPointFS) MkdirAll(dir string, perm os.FileMode) error {
	c.step()
	return c.FS.MkdirAll(dir, perm)
}

type crashPointFile struct {
	vfs.File
	fs *crashPointFS
}

func (f *crashPointFile) Write(b []byte) (int, error) { f.fs.step(); return f.File.Write(b) }
func (f *crashPointFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.step()
	return f.File.WriteAt(b, off)
}
func (f *crashPointFile) Sync() error               { f.fs.step(); return f.File.Sync() }
func (f *crashPointFile) Truncate(size int64) error { f.fs.step(); return f.File.Truncate(size) }
