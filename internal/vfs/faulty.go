package vfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Op is a kind of file-system operation a Rule can fail.
type Op uint16

const (
	OpOpen Op = 1 << iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpRename
	OpRemove
	OpSyncDir
	OpStat // Stat and ReadDir

	OpAll = OpOpen | OpRead | OpWrite | OpSync | OpTruncate | OpRename | OpRemove | OpSyncDir | OpStat
)

var opNames = []struct {
	op   Op
	name string
}{{OpOpen, "open"}, {OpRead, "read"}, {OpWrite, "write"}, {OpSync, "sync"}, {OpTruncate, "truncate"},
	{OpRename, "rename"}, {OpRemove, "remove"}, {OpSyncDir, "syncdir"}, {OpStat, "stat"}}

// ParseOps reads a comma-separated list of operation names ("write,sync") or "all".
func ParseOps(s string) (Op, error) {
	var ops Op
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			ops |= OpAll
			continue
		}
		found := false
		for _, o := range opNames {
			if o.name == name {
				ops, found = ops|o.op, true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown file-system operation %q", name)
		}
	}
	return ops, nil
}

func (o Op) String() string {
	var names []string
	for _, n := range opNames {
		if o&n.op != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// FaultKind is what a firing Rule does.
type FaultKind uint8

const (
	// FaultError fails the operation with the rule's Err (EIO when nil) and does nothing.
	FaultError FaultKind = iota
	// FaultShortWrite writes the first half of the buffer, then fails with Err.
	FaultShortWrite
	// FaultBitFlip lets the operation succeed with one bit of the data flipped: on a read the
	// caller sees it, on a write the file holds it. Silent corruption, as a bad disk gives.
	FaultBitFlip
)

// Rule says which operations fail and how.
type Rule struct {
	Ops   Op
	Path  string // the rule applies to paths containing this; "" matches every path
	Kind  FaultKind
	Err   error // nil means EIO
	After int   // matching operations let through before the rule fires
	Times int   // how many times it fires; 0 is forever
}

type liveRule struct {
	Rule
	seen, fired int
}

// Faulty wraps a file system and fails operations by rules that tests add and remove while
// the code under test runs.
type Faulty struct {
	base  FS
	mu    sync.Mutex
	rules []*liveRule
	fired int
}

// NewFaulty wraps base; with no rules it behaves exactly as base.
func NewFaulty(base FS) *Faulty { return &Faulty{base: base} }

// Inject adds a rule.
func (f *Faulty) Inject(r Rule) {
	f.mu.Lock()
	f.rules = append(f.rules, &liveRule{Rule: r})
	f.mu.Unlock()
}

// Clear removes every rule.
func (f *Faulty) Clear() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
}

// Fired is how many faults have been injected so far.
func (f *Faulty) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// check returns the rule that fires for this operation, if any.
func (f *Faulty) check(op Op, path string) (Rule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.Ops&op == 0 || (r.Path != "" && !strings.Contains(path, r.Path)) {
			continue
		}
		r.seen++
		if r.seen <= r.After || (r.Times > 0 && r.fired >= r.Times) {
			continue
		}
		r.fired++
		f.fired++
		return r.Rule, true
	}
	return Rule{}, false
}

func (r Rule) err(op, path string) error {
	err := r.Err
	if err == nil {
		err = syscall.EIO
	}
	return &os.PathError{Op: op + " (injected)", Path: path, Err: err}
}

// failPlain applies rules to an operation that has no data to corrupt.
func (f *Faulty) failPlain(op Op, name, path string) error {
	if r, ok := f.check(op, path); ok {
		return r.err(name, path)
	}
	return nil
}

func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.failPlain(OpOpen, "open", name); err != nil {
		return nil, err
	}
	file, err := f.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	ff := &faultyFile{File: file, fs: f, path: name}
	if fd, ok := file.(Descriptor); ok {
		return &faultyFdFile{faultyFile: ff, fd: fd}, nil
	}
	return ff, nil
}

func (f *Faulty) Remove(name string) error {
	if err := f.failPlain(OpRemove, "remove", name); err != nil {
		return err
	}
	return f.base.Remove(name)
}

func (f *Faulty) Rename(oldname, newname string) error {
	if err := f.failPlain(OpRename, "rename", oldname); err != nil {
		return err
	}
	return f.base.Rename(oldname, newname)
}

func (f *Faulty) MkdirAll(dir string, perm os.FileMode) error { return f.base.MkdirAll(dir, perm) }

func (f *Faulty) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := f.failPlain(OpStat, "readdir", dir); err != nil {
		return nil, err
	}
	return f.base.ReadDir(dir)
}

func (f *Faulty) Stat(name string) (os.FileInfo, error) {
	if err := f.failPlain(OpStat, "stat", name); err != nil {
		return nil, err
	}
	return f.base.Stat(name)
}

func (f *Faulty) SyncDir(dir string) error {
	if err := f.failPlain(OpSyncDir, "syncdir", dir); err != nil {
		return err
	}
	return f.base.SyncDir(dir)
}

type faultyFile struct {
	File
	fs   *Faulty
	path string
}

// faultyFdFile keeps the descriptor visible so sendfile still works; faults on the sendfile
// path itself are not injected (reads through ReadAt are).
type faultyFdFile struct {
	*faultyFile
	fd Descriptor
}

func (f *faultyFdFile) SyscallConn() (syscall.RawConn, error) { return f.fd.SyscallConn() }

func flipBit(b []byte) {
	if len(b) > 0 {
		b[len(b)/2] ^= 0x10
	}
}

func (f *faultyFile) read(n int, err error, b []byte, r Rule, fired bool) (int, error) {
	if fired && r.Kind == FaultBitFlip && n > 0 {
		flipBit(b[:n])
	}
	return n, err
}

func (f *faultyFile) ReadAt(b []byte, off int64) (int, error) {
	r, fired := f.fs.check(OpRead, f.path)
	if fired && r.Kind != FaultBitFlip {
		return 0, r.err("read", f.path)
	}
	n, err := f.File.ReadAt(b, off)
	return f.read(n, err, b, r, fired)
}

func (f *faultyFile) Read(b []byte) (int, error) {
	r, fired := f.fs.check(OpRead, f.path)
	if fired && r.Kind != FaultBitFlip {
		return 0, r.err("read", f.path)
	}
	n, err := f.File.Read(b)
	return f.read(n, err, b, r, fired)
}

// write applies a firing rule to a write done by do.
func (f *faultyFile) write(b []byte, do func([]byte) (int, error)) (int, error) {
	r, fired := f.fs.check(OpWrite, f.path)
	if !fired {
		return do(b)
	}
	switch r.Kind {
	case FaultShortWrite:
		n, err := do(b[:len(b)/2])
		if err != nil {
			return n, err
		}
		return n, r.err("write", f.path)
	case FaultBitFlip:
		c := append([]byte(nil), b...)
		flipBit(c)
		return do(c)
	}
	return 0, r.err("write", f.path)
}

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write(b, func(b []byte) (int, error) { return f.File.WriteAt(b, off) })
}

func (f *faultyFile) Write(b []byte) (int, error) { return f.write(b, f.File.Write) }

func (f *faultyFile) Sync() error {
	if err := f.fs.failPlain(OpSync, "sync", f.path); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	if err := f.fs.failPlain(OpTruncate, "truncate", f.path); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// IsInjected reports whether err came from a Faulty rule.
func IsInjected(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.HasSuffix(pe.Op, "(injected)")
}
