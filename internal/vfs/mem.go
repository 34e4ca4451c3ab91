package vfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mem is an in-memory file system that models durability the way a disk under a journaling
// file system does, so tests can cut the power at any instant (CrashClone) and see exactly
// what a real machine could come back with:
//
//   - a file's bytes and size become durable at File.Sync; until then a crash returns the
//     contents of its last Sync (empty if it never had one);
//   - a name created, renamed or removed in a directory becomes durable at SyncDir of that
//     directory; until then a crash returns the directory's entries of its last SyncDir, so
//     a renamed file reappears under its old name and a removed one comes back;
//   - a file's synced bytes are reachable after a crash only through a durable name.
//
// Paths are slash-separated; absolute and relative paths name the same tree. Errors are
// *os.PathError or *os.LinkError wrapping the syscall errno a Linux kernel would give, so
// errors.Is(err, os.ErrNotExist) and friends work. Mem is safe for concurrent use; every
// operation, including CrashClone, is atomic with respect to the others.
type Mem struct {
	mu   sync.Mutex
	root *memDir
	now  func() time.Time
}

// memNode is a *memFile or a *memDir.
type memNode interface{ isDir() bool }

// memFile is a file's inode: what the page cache holds and what the disk holds.
type memFile struct {
	data    []byte
	synced  []byte
	modTime time.Time
}

// memDir is a directory's inode: its live entries and the entries its last SyncDir made durable.
type memDir struct {
	entries map[string]memNode
	synced  map[string]memNode
	modTime time.Time
}

func (*memFile) isDir() bool { return false }
func (*memDir) isDir() bool  { return true }

func newMemDir(now time.Time) *memDir {
	return &memDir{entries: map[string]memNode{}, synced: map[string]memNode{}, modTime: now}
}

// NewMem returns an empty in-memory file system whose root directory is durable.
func NewMem() *Mem {
	return &Mem{root: newMemDir(time.Now()), now: time.Now}
}

// splitPath turns a path into its components; the root has none.
func splitPath(name string) []string {
	clean := strings.Trim(filepath.ToSlash(filepath.Clean("/"+name)), "/")
	if clean == "" {
		return nil
	}
	return strings.Split(clean, "/")
}

// lookupDir walks to the directory holding the components parts. Called with mu held.
func (m *Mem) lookupDir(parts []string) (*memDir, error) {
	d := m.root
	for _, p := range parts {
		n, ok := d.entries[p]
		if !ok {
			return nil, syscall.ENOENT
		}
		if !n.isDir() {
			return nil, syscall.ENOTDIR
		}
		d = n.(*memDir)
	}
	return d, nil
}

// lookupParent returns the directory that holds name and name's last component.
func (m *Mem) lookupParent(name string) (*memDir, string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, "", syscall.EINVAL // the root has no parent entry to change
	}
	d, err := m.lookupDir(parts[:len(parts)-1])
	return d, parts[len(parts)-1], err
}

func (m *Mem) lookup(name string) (memNode, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return m.root, nil
	}
	d, err := m.lookupDir(parts[:len(parts)-1])
	if err != nil {
		return nil, err
	}
	n, ok := d.entries[parts[len(parts)-1]]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n, nil
}

func pathErr(op, name string, err error) error { return &os.PathError{Op: op, Path: name, Err: err} }

// OpenFile opens name as os.OpenFile does, honouring O_CREATE, O_EXCL, O_TRUNC, O_APPEND and
// the access mode. Directories cannot be opened (EISDIR): nothing here reads them as files.
func (m *Mem) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, exists := dir.entries[base]
	switch {
	case exists && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, syscall.EEXIST)
	case exists && n.isDir():
		return nil, pathErr("open", name, syscall.EISDIR)
	case !exists && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, syscall.ENOENT)
	case !exists:
		n = &memFile{modTime: m.now()}
		dir.entries[base] = n
		dir.modTime = m.now()
	}
	f := n.(*memFile)
	if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		f.data = f.data[:0:0]
		f.modTime = m.now()
	}
	return &memHandle{fs: m, file: f, name: name, flag: flag}, nil
}

// Remove unlinks a file or an empty directory. Open handles keep working on the file.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := dir.entries[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if d, isDir := n.(*memDir); isDir && len(d.entries) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.entries, base)
	dir.modTime = m.now()
	return nil
}

// Rename moves oldname to newname, replacing a file there, as rename(2) does.
func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error { return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err} }
	odir, obase, err := m.lookupParent(oldname)
	if err != nil {
		return linkErr(err)
	}
	n, ok := odir.entries[obase]
	if !ok {
		return linkErr(syscall.ENOENT)
	}
	ndir, nbase, err := m.lookupParent(newname)
	if err != nil {
		return linkErr(err)
	}
	if target, exists := ndir.entries[nbase]; exists && target != n {
		switch {
		case target.isDir() && !n.isDir():
			return linkErr(syscall.EISDIR)
		case !target.isDir() && n.isDir():
			return linkErr(syscall.ENOTDIR)
		case target.isDir() && len(target.(*memDir).entries) > 0:
			return linkErr(syscall.ENOTEMPTY)
		}
	}
	if d, isDir := n.(*memDir); isDir && m.contains(d, ndir) {
		return linkErr(syscall.EINVAL) // a directory cannot move inside itself
	}
	delete(odir.entries, obase)
	ndir.entries[nbase] = n
	odir.modTime, ndir.modTime = m.now(), m.now()
	return nil
}

// contains reports whether d is inner or one of its ancestors.
func (m *Mem) contains(d, inner *memDir) bool {
	if d == inner {
		return true
	}
	for _, n := range d.entries {
		if sub, ok := n.(*memDir); ok && m.contains(sub, inner) {
			return true
		}
	}
	return false
}

// MkdirAll creates dir and any missing parents. Each new directory's name becomes durable
// only when its parent is synced, as on a real file system.
func (m *Mem) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.root
	for _, p := range splitPath(dir) {
		n, ok := d.entries[p]
		if !ok {
			nd := newMemDir(m.now())
			d.entries[p] = nd
			d.modTime = m.now()
			n = nd
		}
		if !n.isDir() {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		d = n.(*memDir)
	}
	return nil
}

// ReadDir lists dir's live entries sorted by name.
func (m *Mem) ReadDir(dir string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(dir)
	if err != nil {
		return nil, pathErr("open", dir, err)
	}
	d, ok := n.(*memDir)
	if !ok {
		return nil, pathErr("readdirent", dir, syscall.ENOTDIR)
	}
	out := make([]os.DirEntry, 0, len(d.entries))
	for name, child := range d.entries {
		out = append(out, fs.FileInfoToDirEntry(memInfo(name, child)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Stat describes name.
func (m *Mem) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return memInfo(filepath.Base(name), n), nil
}

// SyncDir makes dir's current entries durable: the names it holds now are the names a crash
// leaves it with.
func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(dir)
	if err != nil {
		return pathErr("open", dir, err)
	}
	d, ok := n.(*memDir)
	if !ok {
		return pathErr("fsync", dir, syscall.ENOTDIR)
	}
	d.synced = make(map[string]memNode, len(d.entries))
	for name, child := range d.entries {
		d.synced[name] = child
	}
	return nil
}

// memFileInfo is os.FileInfo for a Mem node.
type memFileInfo struct {
	name    string
	size    int64
	dir     bool
	modTime time.Time
}

func memInfo(name string, n memNode) memFileInfo {
	switch n := n.(type) {
	case *memDir:
		return memFileInfo{name: name, dir: true, modTime: n.modTime}
	case *memFile:
		return memFileInfo{name: name, size: int64(len(n.data)), modTime: n.modTime}
	}
	return memFileInfo{name: name}
}

func (i memFileInfo) Name() string       { return i.name }
func (i memFileInfo) Size() int64        { return i.size }
func (i memFileInfo) ModTime() time.Time { return i.modTime }
func (i memFileInfo) IsDir() bool        { return i.dir }
func (i memFileInfo) Sys() any           { return nil }
func (i memFileInfo) Mode() os.FileMode {
	if i.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
