package raftstore

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// A snapshot is a directory <term>-<index>-<unix ms> holding "state" (the FSM's bytes) and
// "meta" (a sealed JSON of raft's SnapshotMeta plus the CRC-32C of state). It is written
// under a ".tmp" name and published by renaming the synced directory, so a listed snapshot
// is always whole; its data is checked against the CRC when listed and when opened.
const (
	snapMetaFile  = "meta"
	snapStateFile = "state"
	snapTmpSuffix = ".tmp"
	snapsRetained = 2
)

type snapMeta struct {
	raft.SnapshotMeta
	CRC uint32 `json:"crc32c"`
}

// SnapshotStore is a raft.SnapshotStore over vfs that keeps the newest two snapshots.
type SnapshotStore struct {
	fs  vfs.FS
	dir string
	log *slog.Logger
	mu  sync.Mutex // serializes publishing and reaping
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

// OpenSnapshots opens (creating if needed) the snapshot directory dir, removes unfinished
// snapshots, and checks every published one: a failed check of the newest is an error
// wrapping ErrDamaged; an older damaged one is logged and left out of List.
func OpenSnapshots(dir string, opts Options) (*SnapshotStore, error) {
	s := &SnapshotStore{fs: vfs.Or(opts.FS), dir: dir, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot dir: %w", err)
	}
	if _, err := s.list(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Create starts a snapshot; raft writes the FSM into the sink and closes it.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(s.dir, id+snapTmpSuffix)
	if err := s.fs.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot %s: %w", id, err)
	}
	f, err := vfs.Create(s.fs, filepath.Join(tmp, snapStateFile))
	if err != nil {
		s.removeDir(tmp)
		return nil, fmt.Errorf("create snapshot %s: %w", id, err)
	}
	return &snapshotSink{store: s, dir: tmp, file: f, crc: crc32.New(castagnoli), meta: snapMeta{SnapshotMeta: raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}}, nil
}

// List returns the published snapshots, newest first. The newest failing its check is an
// error wrapping ErrDamaged: raft must not silently restore an older state instead.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) { return s.list(false) }

func (s *SnapshotStore) list(cleanTmp bool) ([]*raft.SnapshotMeta, error) {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var ids []string
	for _, e := range entries {
		switch {
		case !e.IsDir():
		case strings.HasSuffix(e.Name(), snapTmpSuffix):
			if cleanTmp {
				s.removeDir(filepath.Join(s.dir, e.Name()))
			}
		default:
			ids = append(ids, e.Name())
		}
	}
	var out []*raft.SnapshotMeta
	for _, id := range ids {
		meta, _, err := s.read(id)
		if err != nil {
			if errors.Is(err, ErrDamaged) {
				// Judged below, once the order is known.
				out = append(out, &raft.SnapshotMeta{ID: id, Version: -1})
				s.log.Warn("metadata snapshot fails its check", "snapshot", id, "err", err)
				continue
			}
			return nil, err
		}
		out = append(out, &meta.SnapshotMeta)
	}
	slices.SortFunc(out, func(a, b *raft.SnapshotMeta) int { return compareSnapIDs(b.ID, a.ID) })
	if len(out) > 0 && out[0].Version == -1 {
		_, _, err := s.read(out[0].ID)
		return nil, err
	}
	return slices.DeleteFunc(out, func(m *raft.SnapshotMeta) bool { return m.Version == -1 }), nil
}

// compareSnapIDs orders ids by term, index and time, the numbers in the name.
func compareSnapIDs(a, b string) int {
	var at, ai, am, bt, bi, bm uint64
	fmt.Sscanf(a, "%d-%d-%d", &at, &ai, &am)
	fmt.Sscanf(b, "%d-%d-%d", &bt, &bi, &bm)
	if c := cmp.Compare(at, bt); c != 0 {
		return c
	}
	if c := cmp.Compare(ai, bi); c != 0 {
		return c
	}
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// read loads and checks one snapshot.
func (s *SnapshotStore) read(id string) (*snapMeta, []byte, error) {
	dir := filepath.Join(s.dir, id)
	payload, err := ReadSealedFile(s.fs, filepath.Join(dir, snapMetaFile))
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: snapshot %s: %w", ErrDamaged, id, err)
		}
		return nil, nil, err
	}
	var meta snapMeta
	if err := json.Unmarshal(payload, &meta); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot %s meta: %v", ErrDamaged, id, err)
	}
	data, err := vfs.ReadFile(s.fs, filepath.Join(dir, snapStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot %s: %w", ErrDamaged, id, err)
	}
	if int64(len(data)) != meta.Size {
		return nil, nil, fmt.Errorf("%w: snapshot %s holds %d bytes, meta says %d", ErrDamaged, id, len(data), meta.Size)
	}
	if crc32.Checksum(data, castagnoli) != meta.CRC {
		return nil, nil, fmt.Errorf("%w: snapshot %s: checksum mismatch", ErrDamaged, id)
	}
	return &meta, data, nil
}

// Open returns a checked snapshot. Metadata snapshots are small, so it is read whole: raft
// never sees a byte that failed the check.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, data, err := s.read(id)
	if err != nil {
		return nil, nil, err
	}
	return &meta.SnapshotMeta, io.NopCloser(bytes.NewReader(data)), nil
}

// reap removes all but the newest snapshots.
func (s *SnapshotStore) reap() error {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), snapTmpSuffix) {
			ids = append(ids, e.Name())
		}
	}
	if len(ids) <= snapsRetained {
		return nil
	}
	slices.SortFunc(ids, func(a, b string) int { return compareSnapIDs(b, a) })
	for _, id := range ids[snapsRetained:] {
		s.removeDir(filepath.Join(s.dir, id))
	}
	return s.fs.SyncDir(s.dir)
}

// removeDir removes a snapshot directory and what it holds (the two files and nothing else).
func (s *SnapshotStore) removeDir(dir string) {
	entries, _ := s.fs.ReadDir(dir)
	for _, e := range entries {
		s.fs.Remove(filepath.Join(dir, e.Name()))
	}
	if err := s.fs.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove snapshot", "dir", dir, "err", err)
	}
}

// snapshotSink writes a snapshot's state, counting its size and CRC as it goes.
type snapshotSink struct {
	store *SnapshotStore
	dir   string
	file  vfs.File
	crc   hash.Hash32
	meta  snapMeta
	done  bool
}

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) Write(p []byte) (int, error) {
	n, err := k.file.Write(p)
	k.crc.Write(p[:n])
	k.meta.Size += int64(n)
	return n, err
}

// Close publishes the snapshot: sync the state, write the meta, sync the directory, rename it
// into place, sync the parent, then drop the oldest beyond two.
func (k *snapshotSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	err := k.file.Sync()
	if cerr := k.file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		k.meta.CRC = k.crc.Sum32()
		var payload []byte
		if payload, err = json.Marshal(k.meta); err == nil {
			err = WriteSealedFile(k.store.fs, filepath.Join(k.dir, snapMetaFile), payload)
		}
	}
	if err != nil {
		k.store.removeDir(k.dir)
		return fmt.Errorf("write snapshot %s: %w", k.meta.ID, err)
	}
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	final := strings.TrimSuffix(k.dir, snapTmpSuffix)
	if err := k.store.fs.Rename(k.dir, final); err != nil {
		k.store.removeDir(k.dir)
		return fmt.Errorf("publish snapshot %s: %w", k.meta.ID, err)
	}
	if err := k.store.fs.SyncDir(k.store.dir); err != nil {
		return fmt.Errorf("publish snapshot %s: %w", k.meta.ID, err)
	}
	return k.store.reap()
}

// Cancel abandons the snapshot.
func (k *snapshotSink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.file.Close()
	k.store.removeDir(k.dir)
	return nil
}
