package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// memHandle is an open Mem file. Like a file descriptor it stays attached to the file it
// opened through renames and removals.
type memHandle struct {
	fs     *Mem
	file   *memFile
	name   string
	flag   int
	pos    int64
	closed bool
}

func (h *memHandle) readable() bool { return h.flag&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY }
func (h *memHandle) writable() bool { return h.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

// check returns the error an operation on this handle gets before it starts. Called with
// the Mem's mutex held.
func (h *memHandle) check(op string, needRead, needWrite bool) error {
	switch {
	case h.closed:
		return pathErr(op, h.name, os.ErrClosed)
	case needRead && !h.readable(), needWrite && !h.writable():
		return pathErr(op, h.name, syscall.EBADF)
	}
	return nil
}

func (h *memHandle) readAtLocked(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathErr("read", h.name, syscall.EINVAL)
	}
	if off >= int64(len(h.file.data)) {
		if len(b) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(b, h.file.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) writeAtLocked(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathErr("write", h.name, syscall.EINVAL)
	}
	f := h.file
	if end := off + int64(len(b)); end > int64(len(f.data)) {
		if end > int64(cap(f.data)) {
			grown := make([]byte, end, max(end, 2*int64(cap(f.data))))
			copy(grown, f.data)
			f.data = grown
		} else {
			old := len(f.data)
			f.data = f.data[:end]
			clear(f.data[old:]) // a hole reads as zeros
		}
	}
	copy(f.data[off:], b)
	f.modTime = h.fs.now()
	return len(b), nil
}

func (h *memHandle) ReadAt(b []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("read", true, false); err != nil {
		return 0, err
	}
	return h.readAtLocked(b, off)
}

func (h *memHandle) Read(b []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("read", true, false); err != nil {
		return 0, err
	}
	n, err := h.readAtLocked(b, h.pos)
	h.pos += int64(n)
	if n > 0 && err == io.EOF {
		err = nil // Read reports EOF only when it returns nothing, as *os.File does
	}
	return n, err
}

// WriteAt writes at off. Like *os.File it refuses a file opened with O_APPEND, where
// pwrite(2) would silently append.
func (h *memHandle) WriteAt(b []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("write", false, true); err != nil {
		return 0, err
	}
	if h.flag&os.O_APPEND != 0 {
		return 0, pathErr("writeat", h.name, errWriteAtInAppendMode)
	}
	return h.writeAtLocked(b, off)
}

var errWriteAtInAppendMode = errors.New("invalid use of WriteAt on file opened with O_APPEND")

func (h *memHandle) Write(b []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("write", false, true); err != nil {
		return 0, err
	}
	if h.flag&os.O_APPEND != 0 {
		h.pos = int64(len(h.file.data))
	}
	n, err := h.writeAtLocked(b, h.pos)
	h.pos += int64(n)
	return n, err
}

func (h *memHandle) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return pathErr("close", h.name, os.ErrClosed)
	}
	h.closed = true
	return nil
}

// Sync makes the file's current bytes the ones a crash leaves, if its name is durable.
func (h *memHandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("sync", false, false); err != nil {
		return err
	}
	h.file.synced = append(h.file.synced[:0:0], h.file.data...)
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("truncate", false, true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", h.name, syscall.EINVAL)
	}
	f := h.file
	if size <= int64(len(f.data)) {
		// A fresh slice, so bytes beyond size are zeros if the file grows again.
		f.data = append([]byte(nil), f.data[:size]...)
	} else {
		grown := make([]byte, size)
		copy(grown, f.data)
		f.data = grown
	}
	f.modTime = h.fs.now()
	return nil
}

func (h *memHandle) Stat() (os.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("stat", false, false); err != nil {
		return nil, err
	}
	return memInfo(filepath.Base(h.name), h.file), nil
}

func (h *memHandle) Name() string { return h.name }
