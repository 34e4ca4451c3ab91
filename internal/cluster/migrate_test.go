package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/vfs"
)

// toLegacy rewrites a node's metadata as older versions kept it: the log after the newest
// snapshot and the stable keys in raft.db (raft-boltdb), the snapshot in a FileSnapshotStore,
// and no new store or marker.
func toLegacy(t *testing.T, metaDir string) {
	t.Helper()
	storeDir := filepath.Join(metaDir, storeDirName)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := openStoreDir(vfs.OS{}, storeDir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := m.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	meta, rc, err := m.snaps.Open(snaps[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	old, err := raft.NewFileSnapshotStoreWithLogger(metaDir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("node-1") // the old store encodes peers with it
	sink, err := old.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, trans)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(sink, rc)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(metaDir, legacyBoltName)})
	if err != nil {
		t.Fatal(err)
	}
	last, _ := m.log.LastIndex()
	for i := meta.Index + 1; i <= last; i++ {
		var l raft.Log
		if err := m.log.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if err := bolt.StoreLog(&l); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range stableKeys {
		if v, err := m.log.Get([]byte(k)); err == nil {
			bolt.Set([]byte(k), v)
		}
	}
	bolt.Close()
	m.Close()
	os.RemoveAll(storeDir)
	os.Remove(filepath.Join(metaDir, markerName))
}

func TestMigrateFromRaftBoltDB(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	ctx := context.Background()
	for _, name := range []string{"before-snapshot-1", "before-snapshot-2"} {
		if _, err := n.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "after-snapshot", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	want := topicIDs(n.State())
	n.Close()
	meta := filepath.Join(dir, "meta")
	toLegacy(t, meta)

	n = openNode(t, dir)
	defer n.Close()
	if got := topicIDs(n.State()); !maps.Equal(got, want) {
		t.Fatalf("topics after migration %v, want %v", got, want)
	}
	for _, name := range []string{legacyBoltName + ".migrated", markerName, filepath.Join(storeDirName, "first-index")} {
		if _, err := os.Stat(filepath.Join(meta, name)); err != nil {
			t.Errorf("after migration: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(meta, legacyBoltName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raft.db still in place: %v", err)
	}
	// The second start uses the new store only.
	n.Close()
	n = openNode(t, dir)
	if got := topicIDs(n.State()); !maps.Equal(got, want) {
		t.Fatalf("topics after a second start %v, want %v", got, want)
	}
}

func TestSingleVoterRefusesToStartOnDamage(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	n.Close()
	flipMiddleOfLog(t, filepath.Join(dir, "meta", storeDirName))
	_, err := Open(context.Background(), Config{NodeID: 1, DataDir: dir, KafkaAddr: "127.0.0.1:9092", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, raftstore.ErrDamaged) {
		t.Fatalf("open a damaged single voter: %v", err)
	}
}
