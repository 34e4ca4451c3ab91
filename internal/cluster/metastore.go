package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/vfs"
)

// Layout of <data-dir>/meta:
//
//	store/              the raft log and stable keys (raftstore.Store)
//	store/snapshots/    the raft snapshots (raftstore.SnapshotStore)
//	bootstrapped        written once this node has belonged to a cluster
//	damaged-<unix>/     stores found damaged, moved aside as evidence
//	raft.db.migrated    the raft-boltdb store of older versions, once imported
//
// Keeping the log and snapshots under one directory lets a migration publish both with one
// rename, and moving damage aside take both with one rename: a log compacted past its
// snapshot is worthless without it.
const (
	storeDirName   = "store"
	snapsDirName   = "snapshots"
	markerName     = "bootstrapped"
	legacyBoltName = "raft.db"
)

// metaStores are the raft stores of a node, and whether it must rebuild them from a leader.
type metaStores struct {
	log   *raftstore.Store
	snaps *raftstore.SnapshotStore
	// rebuild says why the node lost its metadata ("" when it did not): it must not
	// bootstrap and must not vote until it has caught up with a leader.
	rebuild string
	// member reports that this node has belonged to a cluster before.
	member bool
}

func (m *metaStores) Close() error { return m.log.Close() }

// openMetaStores opens the stores in metaDir, importing a raft-boltdb store of an older
// version first. Damage found there is moved aside and the node starts empty to rebuild,
// unless it is the only voter: then nobody holds a copy, and Open fails loudly instead.
func openMetaStores(fsys vfs.FS, metaDir string, nodeID int32, voters int, logger *slog.Logger, hlog hclog.Logger) (*metaStores, error) {
	storeDir := filepath.Join(metaDir, storeDirName)
	member := vfs.Exists(fsys, filepath.Join(metaDir, markerName)) ||
		vfs.Exists(fsys, filepath.Join(metaDir, legacyBoltName)) ||
		raftstore.HasSegments(fsys, storeDir)
	if member {
		// Before anything else: should the store be damaged and moved aside, and the node
		// crash before it has rebuilt, it must still know not to bootstrap.
		if err := markBootstrapped(fsys, metaDir, nodeID); err != nil {
			return nil, fmt.Errorf("bootstrap marker: %w", err)
		}
	}
	if !vfs.Exists(fsys, storeDir) {
		if err := migrateLegacy(fsys, metaDir, storeDir, logger, hlog); err != nil {
			return nil, err
		}
	}
	m, err := openStoreDir(fsys, storeDir, logger)
	if errors.Is(err, raftstore.ErrDamaged) {
		logger.Error("metadata store damaged", "dir", storeDir, "err", err)
		if voters <= 1 {
			return nil, fmt.Errorf("metadata store: %w; this node is the only voter, so there is no copy to rebuild from", err)
		}
		aside, merr := moveAside(fsys, metaDir, storeDir)
		if merr != nil {
			return nil, fmt.Errorf("metadata store: %w; moving it aside: %w", err, merr)
		}
		logger.Error("moved the damaged metadata store aside; rebuilding from the leader", "to", aside)
		if m, err = openStoreDir(fsys, storeDir, logger); err != nil {
			return nil, err
		}
		m.rebuild = fmt.Sprintf("damaged store moved to %s", aside)
	} else if err != nil {
		return nil, err
	}
	m.member = member
	if m.rebuild == "" && member {
		empty, err := m.empty()
		if err != nil {
			m.Close()
			return nil, err
		}
		if empty {
			if voters <= 1 {
				m.Close()
				return nil, fmt.Errorf("metadata store %s: %w: this node has been bootstrapped but its log and snapshots are gone, and it is the only voter", storeDir, raftstore.ErrDamaged)
			}
			logger.Error("metadata log and snapshots are gone from a node that belonged to a cluster; rebuilding from the leader", "dir", storeDir)
			m.rebuild = "log and snapshots missing"
		}
	}
	return m, nil
}

func openStoreDir(fsys vfs.FS, storeDir string, logger *slog.Logger) (*metaStores, error) {
	opts := raftstore.Options{FS: fsys, Logger: logger}
	log, err := raftstore.Open(storeDir, opts)
	if err != nil {
		return nil, fmt.Errorf("metadata log store: %w", err)
	}
	snaps, err := raftstore.OpenSnapshots(filepath.Join(storeDir, snapsDirName), opts)
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("metadata snapshots: %w", err)
	}
	return &metaStores{log: log, snaps: snaps}, nil
}

// empty reports whether the stores hold no entry and no snapshot. Every member of a
// bootstrapped cluster has at least the bootstrap configuration, so a member with nothing
// has lost its metadata, whatever term its stable keys remember.
func (m *metaStores) empty() (bool, error) {
	last, err := m.log.LastIndex()
	if err != nil || last > 0 {
		return false, err
	}
	snaps, err := m.snaps.List()
	return len(snaps) == 0, err
}

// moveAside renames the store into a new damaged-<unix time> directory, never deleting it.
func moveAside(fsys vfs.FS, metaDir, storeDir string) (string, error) {
	aside := filepath.Join(metaDir, "damaged-"+strconv.FormatInt(time.Now().Unix(), 10))
	for i := 1; vfs.Exists(fsys, aside); i++ {
		aside = filepath.Join(metaDir, fmt.Sprintf("damaged-%d-%d", time.Now().Unix(), i))
	}
	if err := fsys.MkdirAll(aside, 0o755); err != nil {
		return "", err
	}
	if err := fsys.Rename(storeDir, filepath.Join(aside, storeDirName)); err != nil {
		return "", err
	}
	return aside, fsys.SyncDir(metaDir)
}

// markBootstrapped records that this node belongs to a cluster, so that losing its log
// later never makes it bootstrap a new one.
func markBootstrapped(fsys vfs.FS, metaDir string, nodeID int32) error {
	name := filepath.Join(metaDir, markerName)
	if vfs.Exists(fsys, name) {
		return nil
	}
	payload := fmt.Appendf(nil, "node %d joined a metadata quorum at %s\n", nodeID, time.Now().UTC().Format(time.RFC3339))
	return raftstore.WriteSealedFile(fsys, name, payload)
}

// removeAll removes dir and everything below it.
func removeAll(fsys vfs.FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if e.IsDir() {
			err = removeAll(fsys, path)
		} else {
			err = fsys.Remove(path)
		}
		if err != nil {
			return err
		}
	}
	return fsys.Remove(dir)
}
