package vfs

import (
	"errors"
	"io"
	"os"
	"sync"
)

// Volatile is a file system whose file data is durable only once synced, the way a page cache
// is: every write stays in this process's memory until File.Sync writes the file's dirty bytes
// and size to base and syncs base. Reads see the unsynced bytes. So a process killed with
// SIGKILL loses exactly what it never synced, which is what an operating-system crash does to
// it, and a real process can be used to test that nothing acknowledged depended on the page
// cache.
//
// An approximation: directory operations (create, rename, remove, mkdir) go straight to base,
// so names are durable at once and only data waits for Sync. A crash that loses a directory
// entry is not simulated. Rename carries a file's unsynced data to its new name.
//
// Volatile files do not implement Descriptor: sendfile would read the base file and miss unsynced
// bytes, so the fetch path copies through ReadAt instead.
type Volatile struct {
	base FS

	mu    sync.Mutex
	files map[string]*pending // unsynced state by path, shared by every handle of a file
}

// NewVolatile wraps base.
func NewVolatile(base FS) *Volatile {
	return &Volatile{base: Or(base), files: map[string]*pending{}}
}

const volatilePage = 4096

// pending is one file's unsynced state: whole pages as the process last wrote them, the size
// the process sees, and the smallest size it truncated to since the last sync (base bytes at
// or past that are no longer the file's, even if the file grew again).
type pending struct {
	mu        sync.Mutex
	pages     map[int64][]byte
	size      int64
	truncated int64
}

func (p *pending) dirty(baseSize int64) bool {
	return len(p.pages) > 0 || p.size != baseSize || p.truncated < baseSize
}

// state returns the pending state of name, loading its size from base on first use.
func (v *Volatile) state(name string, baseFile File) (*pending, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p, ok := v.files[name]; ok {
		return p, nil
	}
	fi, err := baseFile.Stat()
	if err != nil {
		return nil, err
	}
	p := &pending{pages: map[int64][]byte{}, size: fi.Size(), truncated: fi.Size()}
	v.files[name] = p
	return p, nil
}

// Crash forgets every unsynced write, as a process kill does; open files must not be used
// afterwards. For tests that simulate a crash in process.
func (v *Volatile) Crash() {
	v.mu.Lock()
	v.files = map[string]*pending{}
	v.mu.Unlock()
}

func (v *Volatile) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	// O_TRUNC is applied to the pending state, not to base: a truncation is data, lost in a
	// crash before the next Sync. A writable base file is opened read-write without O_APPEND,
	// since Sync writes pages at their offsets and partial pages are read back first.
	baseFlag := flag &^ (os.O_TRUNC | os.O_APPEND)
	if baseFlag&os.O_WRONLY != 0 {
		baseFlag = baseFlag&^os.O_WRONLY | os.O_RDWR
	}
	f, err := v.base.OpenFile(name, baseFlag, perm)
	if err != nil {
		return nil, err
	}
	p, err := v.state(name, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	vf := &volatileFile{fs: v, base: f, p: p, name: name, flag: flag}
	if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		p.mu.Lock()
		p.truncate(0)
		p.mu.Unlock()
	}
	return vf, nil
}

func (v *Volatile) Remove(name string) error {
	if err := v.base.Remove(name); err != nil {
		return err
	}
	v.mu.Lock()
	delete(v.files, name)
	v.mu.Unlock()
	return nil
}

func (v *Volatile) Rename(oldname, newname string) error {
	if err := v.base.Rename(oldname, newname); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.files, newname)
	if p, ok := v.files[oldname]; ok {
		delete(v.files, oldname)
		v.files[newname] = p
	}
	return nil
}

func (v *Volatile) MkdirAll(dir string, perm os.FileMode) error { return v.base.MkdirAll(dir, perm) }
func (v *Volatile) ReadDir(dir string) ([]os.DirEntry, error)   { return v.base.ReadDir(dir) }
func (v *Volatile) SyncDir(dir string) error                    { return v.base.SyncDir(dir) }

// Stat reports the size the process sees, unsynced writes included.
func (v *Volatile) Stat(name string) (os.FileInfo, error) {
	fi, err := v.base.Stat(name)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	p, ok := v.files[name]
	v.mu.Unlock()
	if !ok {
		return fi, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return sizedInfo{fi, p.size}, nil
}

type sizedInfo struct {
	os.FileInfo
	size int64
}

func (s sizedInfo) Size() int64 { return s.size }

// volatileFile is one handle; its position is its own, its data the file's pending state.
type volatileFile struct {
	fs   *Volatile
	base File
	p    *pending
	name string
	flag int

	posMu sync.Mutex
	pos   int64
}

func (f *volatileFile) Name() string { return f.base.Name() }
func (f *volatileFile) Close() error { return f.base.Close() }

func (f *volatileFile) Stat() (os.FileInfo, error) {
	fi, err := f.base.Stat()
	if err != nil {
		return nil, err
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return sizedInfo{fi, f.p.size}, nil
}

func (f *volatileFile) writable() bool { return f.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

func (f *volatileFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: errors.New("negative offset")}
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return f.p.readAt(f.base, b, off)
}

// readAt reads the base file's bytes that are still the file's, then lays the dirty pages
// over them. Called with p.mu held.
func (p *pending) readAt(base File, b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-off))
	out := b[:n]
	got := 0
	if off < p.truncated {
		want := int(min(int64(n), p.truncated-off))
		var err error
		got, err = base.ReadAt(out[:want], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	clear(out[got:])
	for page := off / volatilePage; page*volatilePage < off+int64(n); page++ {
		data, ok := p.pages[page]
		if !ok {
			continue
		}
		start := page * volatilePage
		from, to := max(start, off), min(start+volatilePage, off+int64(n))
		copy(out[from-off:to-off], data[from-start:to-start])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *volatileFile) Read(b []byte) (int, error) {
	f.posMu.Lock()
	defer f.posMu.Unlock()
	n, err := f.ReadAt(b, f.pos)
	f.pos += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil // io.Reader: EOF comes with the next call
	}
	return n, err
}

func (f *volatileFile) WriteAt(b []byte, off int64) (int, error) {
	if !f.writable() {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: os.ErrPermission}
	}
	if f.flag&os.O_APPEND != 0 {
		return 0, &os.PathError{Op: "writeat", Path: f.name, Err: errors.New("file opened with O_APPEND")}
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return f.p.writeAt(f.base, b, off)
}

// writeAt copies b into pages, loading each page's current bytes first so a partial page
// keeps what surrounds the write. Called with p.mu held.
func (p *pending) writeAt(base File, b []byte, off int64) (int, error) {
	end := off + int64(len(b))
	for page := off / volatilePage; page*volatilePage < end; page++ {
		start := page * volatilePage
		data, ok := p.pages[page]
		if !ok {
			data = make([]byte, volatilePage)
			if start < p.size {
				if _, err := p.readAt(base, data, start); err != nil && !errors.Is(err, io.EOF) {
					return 0, err
				}
			}
			p.pages[page] = data
		}
		from, to := max(start, off), min(start+volatilePage, end)
		copy(data[from-start:to-start], b[from-off:to-off])
	}
	p.size = max(p.size, end)
	return len(b), nil
}

func (f *volatileFile) Write(b []byte) (int, error) {
	if !f.writable() {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: os.ErrPermission}
	}
	f.posMu.Lock()
	defer f.posMu.Unlock()
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.flag&os.O_APPEND != 0 {
		f.pos = f.p.size
	}
	n, err := f.p.writeAt(f.base, b, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *volatileFile) Truncate(size int64) error {
	if !f.writable() {
		return &os.PathError{Op: "truncate", Path: f.name, Err: os.ErrPermission}
	}
	if size < 0 {
		return &os.PathError{Op: "truncate", Path: f.name, Err: errors.New("negative size")}
	}
	f.p.mu.Lock()
	f.p.truncate(size)
	f.p.mu.Unlock()
	return nil
}

// truncate drops pages past size and zeroes the tail of the page that holds it, so a file
// that grows again reads zeros there, as after ftruncate. Called with p.mu held.
func (p *pending) truncate(size int64) {
	for page, data := range p.pages {
		start := page * volatilePage
		switch {
		case start >= size:
			delete(p.pages, page)
		case start+volatilePage > size:
			clear(data[size-start:])
		}
	}
	p.size = size
	p.truncated = min(p.truncated, size)
}

// Sync writes the file's pending state to base and syncs it: first the truncation, then the
// dirty pages, then the final size.
func (f *volatileFile) Sync() error {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	fi, err := f.base.Stat()
	if err != nil {
		return err
	}
	if !f.p.dirty(fi.Size()) {
		return f.base.Sync()
	}
	w := f.base
	if !f.writable() {
		// fsync through a read-only descriptor still flushes the file: open one that can.
		if w, err = f.fs.base.OpenFile(f.name, os.O_WRONLY, 0); err != nil {
			return err
		}
		defer w.Close()
	}
	if f.p.truncated < fi.Size() {
		if err := w.Truncate(f.p.truncated); err != nil {
			return err
		}
	}
	for page, data := range f.p.pages {
		start := page * volatilePage
		n := min(int64(volatilePage), f.p.size-start)
		if _, err := w.WriteAt(data[:n], start); err != nil {
			return err
		}
	}
	if err := w.Truncate(f.p.size); err != nil {
		return err
	}
	if err := w.Sync(); err != nil {
		return err
	}
	clear(f.p.pages)
	f.p.truncated = f.p.size
	return nil
}

var _ File = (*volatileFile)(nil)
