package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/vfs"
	"go.etcd.io/bbolt"
)

// Older versions kept the metadata log and stable keys in meta/raft.db (raft-boltdb) and
// snapshots in meta/snapshots (raft's FileSnapshotStore). migrateLegacy imports them once
// into a new store: it builds the store under a temporary name and publishes it with a
// rename, so a crash part-way leaves no half-imported store; then it renames raft.db to
// raft.db.migrated. The old files are read, never changed otherwise. They live on the
// operating system's file system (bbolt maps its file), not behind the vfs seam.
func migrateLegacy(fsys vfs.FS, metaDir, storeDir string, logger *slog.Logger, hlog hclog.Logger) error {
	boltPath := filepath.Join(metaDir, legacyBoltName)
	haveBolt := vfs.Exists(fsys, boltPath)
	haveSnaps := vfs.Exists(fsys, filepath.Join(metaDir, "snapshots"))
	if !haveBolt && !haveSnaps {
		return nil
	}
	tmp := storeDir + ".migrating"
	if err := removeAll(fsys, tmp); err != nil {
		return fmt.Errorf("migrate metadata: clear %s: %w", tmp, err)
	}
	m, err := openStoreDir(fsys, tmp, logger)
	if err != nil {
		return fmt.Errorf("migrate metadata: %w", err)
	}
	entries := 0
	if haveSnaps {
		err = importFileSnapshot(metaDir, m.snaps, hlog)
	}
	if err == nil && haveBolt {
		entries, err = importBolt(boltPath, m.log)
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, storeDir)
	}
	if err == nil {
		err = fsys.SyncDir(metaDir)
	}
	if err == nil && haveBolt {
		if err = fsys.Rename(boltPath, boltPath+".migrated"); err == nil {
			err = fsys.SyncDir(metaDir)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate metadata from %s: %w", metaDir, err)
	}
	logger.Info("imported the metadata store of an older version", "entries", entries, "from", metaDir)
	return nil
}

// stableKeys are the keys raft keeps in its stable store.
var stableKeys = []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"}

func importBolt(path string, dst *raftstore.Store) (int, error) {
	src, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	for _, k := range stableKeys {
		v, err := src.Get([]byte(k))
		if err != nil && err.Error() == "not found" {
			continue
		}
		if err == nil && len(v) > 0 {
			err = dst.Set([]byte(k), v)
		}
		if err != nil {
			return 0, fmt.Errorf("stable key %s: %w", k, err)
		}
	}
	first, err := src.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := src.LastIndex()
	if err != nil || first == 0 {
		return 0, err
	}
	const batch = 256
	for from := first; from <= last; from += batch {
		var logs []*raft.Log
		for i := from; i <= last && i < from+batch; i++ {
			l := new(raft.Log)
			if err := src.GetLog(i, l); err != nil {
				return 0, fmt.Errorf("entry %d: %w", i, err)
			}
			logs = append(logs, l)
		}
		if err := dst.StoreLogs(logs); err != nil {
			return 0, err
		}
	}
	return int(last - first + 1), nil
}

// importFileSnapshot copies the newest snapshot raft's FileSnapshotStore holds in dir.
func importFileSnapshot(dir string, dst *raftstore.SnapshotStore, hlog hclog.Logger) error {
	old, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return err
	}
	list, err := old.List()
	if err != nil || len(list) == 0 {
		return err
	}
	meta, rc, err := old.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", list[0].ID, err)
	}
	defer rc.Close()
	sink, err := dst.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(sink, rc); err != nil {
		sink.Cancel()
		return fmt.Errorf("copy snapshot %s: %w", meta.ID, err)
	}
	return sink.Close()
}
