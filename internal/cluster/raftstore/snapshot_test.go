package raftstore

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

func writeSnapshot(t *testing.T, s *SnapshotStore, index uint64, data string) string {
	t.Helper()
	sink, err := s.Create(raft.SnapshotVersionMax, index, 2, raft.Configuration{Servers: []raft.Server{{ID: "1", Address: "a"}}}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sink, data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func TestSnapshotStoreKeepsTwoAndChecks(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSnapshots(dir, Options{FS: vfs.OS{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	writeSnapshot(t, s, 10, "ten")
	older := writeSnapshot(t, s, 20, "twenty")
	newest := writeSnapshot(t, s, 30, "thirty")
	cancelled, _ := s.Create(raft.SnapshotVersionMax, 40, 2, raft.Configuration{}, 1, nil)
	cancelled.Write([]byte("x"))
	cancelled.Cancel()

	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].ID != newest || list[1].ID != older {
		t.Fatalf("list %v %v", list, err)
	}
	meta, rc, err := s.Open(newest)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	if string(data) != "thirty" || meta.Index != 30 || meta.Size != 6 || len(meta.Configuration.Servers) != 1 {
		t.Fatalf("opened %+v %q", meta, data)
	}

	// A flipped byte in the older one: left out. In the newest: damage.
	flipByte(t, filepath.Join(dir, older, snapStateFile), 2)
	if list, err := s.List(); err != nil || len(list) != 1 {
		t.Fatalf("list with a damaged older snapshot: %v %v", list, err)
	}
	if _, _, err := s.Open(older); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open damaged: %v", err)
	}
	flipByte(t, filepath.Join(dir, newest, snapStateFile), 0)
	if _, err := s.List(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("list with the newest damaged: %v", err)
	}
	if _, err := OpenSnapshots(dir, Options{FS: vfs.OS{}, Logger: quiet}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("reopen with the newest damaged: %v", err)
	}
	os.Remove(filepath.Join(dir, newest, snapMetaFile))
	if _, err := s.List(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("list with the newest's meta gone: %v", err)
	}
}
