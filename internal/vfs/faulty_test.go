package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFaultyRules(t *testing.T) {
	dir := t.TempDir()
	fs := NewFaulty(OS{})
	name := filepath.Join(dir, "a.log")
	f, err := Create(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(Descriptor); !ok {
		t.Fatal("a faulty OS file lost its descriptor")
	}

	fs.Inject(Rule{Ops: OpSync, Path: "a.log", After: 1, Times: 1})
	if err := f.Sync(); err != nil {
		t.Fatalf("first sync should pass (After 1): %v", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) || !IsInjected(err) {
		t.Fatalf("second sync: want injected EIO, got %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("third sync should pass (Times 1): %v", err)
	}

	fs.Inject(Rule{Ops: OpWrite, Kind: FaultShortWrite, Times: 1})
	n, err := f.WriteAt([]byte("abcdefgh"), 0)
	if n != 4 || !IsInjected(err) {
		t.Fatalf("short write: n=%d err=%v", n, err)
	}
	fs.Inject(Rule{Ops: OpRead, Kind: FaultBitFlip, Times: 1})
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) == "abcd" {
		t.Fatalf("bit flip on read: %q %v", b, err)
	}
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "abcd" {
		t.Fatalf("the file itself must be intact: %q %v", b, err)
	}
	if fs.Fired() != 3 {
		t.Fatalf("fired %d, want 3", fs.Fired())
	}
	fs.Clear()
	if _, err := fs.Stat(name); err != nil {
		t.Fatal(err)
	}
	fs.Inject(Rule{Ops: OpOpen, Path: "b.log", Err: syscall.ENOSPC})
	if _, err := Create(fs, filepath.Join(dir, "b.log")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("open: want ENOSPC, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed open must not create the file")
	}
}

func TestParseOps(t *testing.T) {
	ops, err := ParseOps("write, sync")
	if err != nil || ops != OpWrite|OpSync || ops.String() != "write,sync" {
		t.Fatalf("%v %v", ops, err)
	}
	if _, err := ParseOps("fsync"); err == nil {
		t.Fatal("unknown op accepted")
	}
}
