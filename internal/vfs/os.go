package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// OS is the operating system's file system.
type OS struct{}

type osFile struct{ *os.File }

// Sync is fdatasync: data and size, not timestamps.
func (f osFile) Sync() error {
	if err := unix.Fdatasync(int(f.File.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.File.Name(), Err: err}
	}
	return nil
}

func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OS) Remove(name string) error                    { return os.Remove(name) }
func (OS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (OS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (OS) ReadDir(dir string) ([]os.DirEntry, error)   { return os.ReadDir(dir) }
func (OS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
