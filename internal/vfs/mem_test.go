package vfs

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
)

func mustWrite(t *testing.T, fs FS, name, data string, sync bool) File {
	t.Helper()
	f, err := Create(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// overwrite writes s at the start of the existing file name.
func overwrite(t *testing.T, fs FS, name, s string) {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(s), 0); err != nil {
		t.Fatal(err)
	}
}

func contents(t *testing.T, fs FS, name string) (string, bool) {
	t.Helper()
	b, err := ReadFile(fs, name)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b), true
}

func wantContents(t *testing.T, fs FS, name, want string) {
	t.Helper()
	got, ok := contents(t, fs, name)
	if !ok {
		t.Fatalf("%s does not exist, want %q", name, want)
	}
	if got != want {
		t.Fatalf("%s holds %q, want %q", name, got, want)
	}
}

func wantMissing(t *testing.T, fs FS, name string) {
	t.Helper()
	if got, ok := contents(t, fs, name); ok {
		t.Fatalf("%s exists holding %q, want it gone", name, got)
	}
}

func TestMemOSCompatibleErrors(t *testing.T) {
	m := NewMem()
	if _, err := Open(m, "/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := Create(m, "/no/dir/f"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("create in missing dir: %v", err)
	}
	mustWrite(t, m, "/f", "x", false).Close()
	if _, err := m.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_EXCL on existing: %v", err)
	}
	if _, err := Create(m, "/f/g"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("create under a file: %v", err)
	}
	if err := m.Remove("/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("remove missing: %v", err)
	}
	if err := m.Rename("/nope", "/x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rename missing: %v", err)
	}
	if err := m.MkdirAll("/d/e", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("/d"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("remove non-empty dir: %v", err)
	}
	if _, err := Create(m, "/d"); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("open a dir as a file: %v", err)
	}
	ro, err := Open(m, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Write([]byte("y")); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("write to read-only: %v", err)
	}
	ro.Close()
	if _, err := ro.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := ro.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := m.Stat("/nope"); !errors.Is(err, os.ErrNotExist) || Exists(m, "/nope") || !Exists(m, "/f") {
		t.Fatalf("stat missing: %v", err)
	}
}

func TestMemReadWriteSemantics(t *testing.T) {
	m := NewMem()
	f := mustWrite(t, m, "/f", "hello", false)
	if _, err := f.WriteAt([]byte("XY"), 8); err != nil {
		t.Fatal(err)
	}
	wantContents(t, m, "/f", "hello\x00\x00\x00XY") // a hole reads as zeros
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF {
		t.Fatalf("ReadAt across the end: %d, %v", n, err)
	}
	if n, err := f.ReadAt(buf, 100); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	if err := f.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	wantContents(t, m, "/f", "hel\x00\x00") // truncation forgets the bytes it cut
	if st, err := f.Stat(); err != nil || st.Size() != 5 || st.Name() != "f" || st.IsDir() {
		t.Fatalf("stat: %v %v", st, err)
	}
	f.Close()

	a, err := m.OpenFile("/f", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("!"))
	if _, err := a.WriteAt([]byte("?"), 0); err == nil {
		t.Fatal("WriteAt on an O_APPEND file succeeded")
	}
	a.Close()
	wantContents(t, m, "/f", "hel\x00\x00!")
	tr, _ := m.OpenFile("/f", os.O_RDWR|os.O_TRUNC, 0)
	tr.Close()
	wantContents(t, m, "/f", "")

	// A handle outlives its name, as a descriptor does.
	h := mustWrite(t, m, "/g", "abc", false)
	if err := m.Rename("/g", "/h"); err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("d"))
	wantContents(t, m, "/h", "abcd")
	m.Remove("/h")
	if n, err := h.ReadAt(buf, 0); n != 4 || err != nil || string(buf) != "abcd" {
		t.Fatalf("read an unlinked file: %q %v", buf[:n], err)
	}

	m.MkdirAll("/d", 0o755)
	mustWrite(t, m, "/d/b", "", false).Close()
	mustWrite(t, m, "/d/a", "", false).Close()
	m.MkdirAll("/d/c", 0o755)
	ents, err := m.ReadDir("/d")
	if err != nil || len(ents) != 3 || ents[0].Name() != "a" || ents[1].Name() != "b" || !ents[2].IsDir() {
		t.Fatalf("readdir: %v %v", ents, err)
	}
	if err := m.Rename("/d", "/d/c/x"); err == nil {
		t.Fatal("moved a directory inside itself")
	}
}

func TestMemCrashDropsUnsyncedData(t *testing.T) {
	m := NewMem()
	f := mustWrite(t, m, "/f", "durable", true)
	m.SyncDir("/")
	f.Write([]byte("-lost"))
	c := m.CrashClone()
	wantContents(t, c, "/f", "durable")
	wantContents(t, m, "/f", "durable-lost") // the original goes on
	f.Sync()
	wantContents(t, m.CrashClone(), "/f", "durable-lost")
	f.Truncate(2)
	wantContents(t, m.CrashClone(), "/f", "durable-lost") // an unsynced truncation is undone
	// The clone is independent: writing to it does not touch the original, nor later clones.
	overwrite(t, c, "/f", "D")
	wantContents(t, m, "/f", "du")
}

func TestMemCreatedFileNeedsDirSync(t *testing.T) {
	m := NewMem()
	mustWrite(t, m, "/f", "synced data, unsynced name", true).Close()
	wantMissing(t, m.CrashClone(), "/f")
	m.SyncDir("/")
	wantContents(t, m.CrashClone(), "/f", "synced data, unsynced name")

	// A name made durable before its data is synced comes back empty.
	mustWrite(t, m, "/g", "never synced", false).Close()
	m.SyncDir("/")
	wantContents(t, m.CrashClone(), "/g", "")
}

func TestMemRenameDurableOnlyAfterSyncDir(t *testing.T) {
	m := NewMem()
	mustWrite(t, m, "/cur", "old", true).Close()
	m.SyncDir("/")
	mustWrite(t, m, "/cur.tmp", "new", true).Close()
	if err := m.Rename("/cur.tmp", "/cur"); err != nil {
		t.Fatal(err)
	}
	wantContents(t, m, "/cur", "new")
	c := m.CrashClone()
	wantContents(t, c, "/cur", "old")
	wantMissing(t, c, "/cur.tmp") // the temp file's name was never durable either
	m.SyncDir("/")
	c = m.CrashClone()
	wantContents(t, c, "/cur", "new")
	wantMissing(t, c, "/cur.tmp")

	// Across directories each side needs its own sync.
	m.MkdirAll("/a", 0o755)
	m.MkdirAll("/b", 0o755)
	m.SyncDir("/")
	mustWrite(t, m, "/a/f", "moving", true).Close()
	m.SyncDir("/a")
	m.Rename("/a/f", "/b/f")
	m.SyncDir("/b")
	c = m.CrashClone()
	wantContents(t, c, "/a/f", "moving") // the source directory still names it
	wantContents(t, c, "/b/f", "moving")
	// Both names reach one file, as a hard link would.
	overwrite(t, c, "/a/f", "M")
	wantContents(t, c, "/b/f", "Moving")
}

func TestMemRemovalUndoneByCrashWithoutDirSync(t *testing.T) {
	m := NewMem()
	mustWrite(t, m, "/f", "keep", true).Close()
	m.SyncDir("/")
	if err := m.Remove("/f"); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, m, "/f")
	wantContents(t, m.CrashClone(), "/f", "keep")
	m.SyncDir("/")
	wantMissing(t, m.CrashClone(), "/f")
}

func TestMemNewDirectoryNeedsParentSync(t *testing.T) {
	m := NewMem()
	m.MkdirAll("/data/p", 0o755)
	mustWrite(t, m, "/data/p/f", "x", true).Close()
	m.SyncDir("/data/p")
	if Exists(m.CrashClone(), "/data") {
		t.Fatal("a directory whose parent was never synced survived the crash")
	}
	m.SyncDir("/")
	if c := m.CrashClone(); !Exists(c, "/data") || Exists(c, "/data/p") {
		t.Fatal("after syncing / only /data should survive")
	}
	m.SyncDir("/data")
	wantContents(t, m.CrashClone(), "/data/p/f", "x")
}

func TestMemCrashCloneRandomKeepsSyncedAndAPrefix(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		m := NewMem()
		f := mustWrite(t, m, "/f", "synced|", true)
		m.SyncDir("/")
		f.Write([]byte("unsynced tail"))
		mustWrite(t, m, "/g", "new", true).Close() // its name is not synced
		c := m.CrashCloneRandom(rng)
		got, ok := contents(t, c, "/f")
		if !ok || !bytes.HasPrefix([]byte("synced|unsynced tail"), []byte(got)) || len(got) < len("synced|") {
			t.Fatalf("seed %d: /f holds %q (exists %v), want the synced bytes and a prefix of the rest", seed, got, ok)
		}
		if g, ok := contents(t, c, "/g"); ok && g != "new" {
			t.Fatalf("seed %d: /g holds %q", seed, g)
		}
	}
}

func TestMemConcurrentUse(t *testing.T) {
	m := NewMem()
	f := mustWrite(t, m, "/f", "", true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			f.Write([]byte("0123456789"))
			if i%10 == 0 {
				f.Sync()
			}
		}
	}()
	for i := 0; i < 100; i++ {
		m.SyncDir("/")
		got, _ := contents(t, m.CrashClone(), "/f")
		if len(got)%10 != 0 {
			t.Fatalf("clone holds a torn write of %d bytes", len(got))
		}
	}
	<-done
}

// TestRemoveAll removes a tree on Mem and on the OS alike, and a missing path is no error.
func TestRemoveAll(t *testing.T) {
	for name, fs := range map[string]FS{"mem": NewMem(), "os": OS{}} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if err := fs.MkdirAll(root+"/d/sub/deeper", 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, fs, root+"/d/a", "a", true).Close()
			mustWrite(t, fs, root+"/d/sub/b", "b", true).Close()
			mustWrite(t, fs, root+"/keep", "k", true).Close()
			if err := RemoveAll(fs, root+"/d"); err != nil {
				t.Fatal(err)
			}
			if Exists(fs, root+"/d") {
				t.Fatal("the tree is still there")
			}
			wantContents(t, fs, root+"/keep", "k")
			if err := RemoveAll(fs, root+"/d"); err != nil {
				t.Fatalf("removing a missing path: %v", err)
			}
		})
	}
}
