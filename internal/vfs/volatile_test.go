package vfs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readBase reads a file straight from the operating system, as a process started after a
// crash would.
func readBase(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t *testing.T, fs FS, name string) []byte {
	t.Helper()
	b, err := ReadFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVolatileUnsyncedStaysInMemory(t *testing.T) {
	name := filepath.Join(t.TempDir(), "a.log")
	fs := NewVolatile(OS{})
	f, err := Create(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(Descriptor); ok {
		t.Fatal("a volatile file offers its descriptor: sendfile would miss unsynced bytes")
	}
	data := bytes.Repeat([]byte("0123456789"), 1000) // spans three pages
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, fs, name); !bytes.Equal(got, data) {
		t.Fatalf("in process: read %d bytes, want the %d written", len(got), len(data))
	}
	if fi, _ := fs.Stat(name); fi.Size() != int64(len(data)) {
		t.Fatalf("in process: Stat size %d, want %d", fi.Size(), len(data))
	}
	if got := readBase(t, name); len(got) != 0 {
		t.Fatalf("base holds %d bytes before Sync", len(got))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readBase(t, name); !bytes.Equal(got, data) {
		t.Fatalf("base after Sync: %d bytes, want %d", len(got), len(data))
	}

	// A write in the middle of a synced page, then a crash: base keeps the synced bytes.
	if _, err := f.WriteAt([]byte("XYZ"), 5000); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := f.ReadAt(got, 4999); err != nil || string(got) != "9XYZ3" {
		t.Fatalf("overlay read %q, %v", got, err)
	}
	fs.Crash()
	after := NewVolatile(OS{})
	if got := readAll(t, after, name); !bytes.Equal(got, data) {
		t.Fatal("after a crash, the unsynced write is visible or synced data is gone")
	}
}

func TestVolatileTruncate(t *testing.T) {
	name := filepath.Join(t.TempDir(), "a.log")
	fs := NewVolatile(OS{})
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte{'a'}, 10000)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// Truncate into the second page, grow again: the regrown part reads zeros, and base is
	// untouched until Sync.
	if err := f.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("b"), 8999); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{'a'}, 5000), make([]byte, 3999)...)
	want = append(want, 'b')
	if got := readAll(t, fs, name); !bytes.Equal(got, want) {
		t.Fatalf("in process after truncate and regrow: %d bytes, differs from want", len(got))
	}
	if got := readBase(t, name); !bytes.Equal(got, data) {
		t.Fatal("base changed before Sync")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readBase(t, name); !bytes.Equal(got, want) {
		t.Fatalf("base after Sync: %d bytes, differs from the process's view", len(got))
	}

	// O_TRUNC is a truncation like any other: lost in a crash before Sync.
	g, err := fs.OpenFile(name, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if fi, _ := fs.Stat(name); fi.Size() != 0 {
		t.Fatalf("size after O_TRUNC: %d", fi.Size())
	}
	fs.Crash()
	if got := readBase(t, name); !bytes.Equal(got, want) {
		t.Fatal("an unsynced O_TRUNC reached base")
	}
}

func TestVolatileReopenAndRename(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "a.log")
	fs := NewVolatile(OS{})
	w, err := fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// Closing does not sync: another handle, opened later, still sees the bytes...
	r, err := Open(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "hello " {
		t.Fatalf("reopened: %q, %v", b, err)
	}
	// ...and a sync through it makes them durable, as fsync on any descriptor does.
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if got := readBase(t, name); string(got) != "hello " {
		t.Fatalf("base after Sync through a read-only handle: %q", got)
	}

	w, err = fs.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	moved := filepath.Join(dir, "b.log")
	if err := fs.Rename(name, moved); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, fs, moved); string(got) != "hello world" {
		t.Fatalf("after rename the unsynced bytes moved with the name: got %q", got)
	}
	if got := readBase(t, moved); string(got) != "hello " {
		t.Fatalf("base after rename (names pass through, data waits): %q", got)
	}
	if err := fs.Remove(moved); err != nil {
		t.Fatal(err)
	}
	if Exists(fs, moved) {
		t.Fatal("removed file still exists")
	}
}
