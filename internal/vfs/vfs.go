package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// File is an open file. Its methods behave as *os.File's do.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Reader
	io.Writer
	io.Closer
	// Sync makes the file's data and size durable (fdatasync).
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
}

// Descriptor is implemented by files backed by an operating-system descriptor. The fetch
// path uses it to send file bytes with sendfile(2); other files are copied through a buffer.
// As os.File's, the RawConn's Control holds the descriptor while its callback runs, so a
// Close meanwhile (a deleted partition's log) can neither pull it away nor let its number
// be reused for another file mid-call; after Close, Control fails.
type Descriptor interface {
	SyscallConn() (syscall.RawConn, error)
}

// FS is a file system. Paths are OS paths; flags and modes are os's.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	ReadDir(dir string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
}

// Default is the file system used when a config names none.
var Default FS = OS{}

// Or returns fs, or Default when fs is nil.
func Or(fs FS) FS {
	if fs == nil {
		return Default
	}
	return fs
}

// Open opens name read-only.
func Open(fs FS, name string) (File, error) { return fs.OpenFile(name, os.O_RDONLY, 0) }

// Create creates or truncates name for reading and writing.
func Create(fs FS, name string) (File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

// ReadFile reads the whole of name.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := Open(fs, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFileDurably replaces name with data so that after a crash the file holds either its old
// contents or all of data: it writes a temporary file, syncs it, renames it over name and syncs
// the directory.
func WriteFileDurably(fs FS, name string, data []byte) error {
	tmp := name + ".tmp"
	if err := WriteFileSynced(fs, tmp, data); err != nil {
		fs.Remove(tmp)
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		fs.Remove(tmp)
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}

// WriteFileSynced creates or truncates name, writes data and syncs it. Its directory entry
// is not synced: a new name may vanish in a crash.
func WriteFileSynced(fs FS, name string, data []byte) error {
	f, err := Create(fs, name)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Exists reports whether name exists; an error other than "does not exist" counts as existing,
// so a failing disk is never mistaken for an empty one.
func Exists(fs FS, name string) bool {
	_, err := fs.Stat(name)
	return !errors.Is(err, os.ErrNotExist)
}

// MkdirAllDurably creates dir and any missing parents and syncs the parent of each directory
// it created, so that the new directories survive a crash: a directory entry, like a file's,
// is durable only once its parent directory is synced.
func MkdirAllDurably(fs FS, dir string, perm os.FileMode) error {
	var created []string
	for d := filepath.Clean(dir); !Exists(fs, d); d = filepath.Dir(d) {
		created = append(created, d)
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := fs.SyncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

// RemoveAll removes path and everything under it, as os.RemoveAll does; a path that does
// not exist is not an error.
func RemoveAll(fs FS, path string) error {
	st, err := fs.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		ents, err := fs.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := RemoveAll(fs, filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
