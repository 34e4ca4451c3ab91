package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/strand-data/strand/internal/vfs"
)

// A full disk must not take the metadata quorum down with it. hashicorp/raft answers a log
// write that fails by stepping down, and a term or vote it cannot store by panicking, so on
// a single node one ENOSPC in the metadata log ends the process. The store therefore keeps a
// reserve file of space only it may spend (CockroachDB's "ballast file" does the same): when
// a write finds the disk full, the store deletes the reserve and writes again. The node then
// runs on the reserve: the store reports itself unhealthy (Health) so the node can refuse
// metadata writes a client asked for (a producer-id block, a new topic) and keep the space
// for the writes raft and the controller cannot do without, and it makes the reserve again
// once the disk has room.
const reserveFile = "reserve"

// ReserveSize is the space the reserve holds back: thousands of metadata entries.
var ReserveSize int64 = 1 << 20

// ProbeInterval is how often an unhealthy store tries to make its reserve again (or, when a
// write failed for another reason, writes a probe file) to find out that it can write.
var ProbeInterval = 2 * time.Second

// ErrOnReserve says the disk filled up and the store is spending its reserve.
var ErrOnReserve = errors.New("the disk is full; the metadata store is running on its reserved space")

// health is what the store knows about its ability to write.
type health struct {
	mu        sync.Mutex
	writeErr  error // the last log or stable write's failure; nil after a success
	onReserve bool  // the reserve is spent (or could never be made)
	lastProbe time.Time
	probing   sync.Mutex // one probe at a time, outside mu
}

// err is why the store is unhealthy, or nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.writeErr != nil:
		return h.writeErr
	case h.onReserve:
		return ErrOnReserve
	}
	return nil
}

// makeReserve writes the reserve file durably (through a temporary name, so a reserve that
// could not be written whole holds no space).
func (s *Store) makeReserve() error {
	name := filepath.Join(s.dir, reserveFile)
	if vfs.Exists(s.fs, name) {
		return nil
	}
	if err := vfs.WriteFileDurably(s.fs, name, make([]byte, ReserveSize)); err != nil {
		_ = s.fs.Remove(name + ".tmp")
		return fmt.Errorf("metadata store reserve: %w", err)
	}
	return nil
}

// spendReserve deletes the reserve to free its space; it reports whether there was one.
func (s *Store) spendReserve() bool {
	name := filepath.Join(s.dir, reserveFile)
	if err := s.fs.Remove(name); err != nil {
		return false
	}
	_ = s.fs.SyncDir(s.dir)
	s.setOnReserve(true)
	return true
}

func (s *Store) setOnReserve(on bool) {
	s.health.mu.Lock()
	was := s.health.onReserve
	s.health.onReserve = on
	s.health.mu.Unlock()
	switch {
	case on && !was:
		s.log.Error("metadata store: the disk is full; spent the reserved space so raft can go on, and refusing metadata writes clients ask for until there is room",
			"dir", s.dir, "reserve_bytes", ReserveSize)
	case !on && was:
		s.log.Info("metadata store: the disk has room again; reserve made again", "dir", s.dir)
	}
}

// write runs a log or stable write; when the disk is full it spends the reserve and runs
// it once more. It records the outcome for Health, logging only changes.
func (s *Store) write(op func() error) error {
	err := op()
	if err != nil && errors.Is(err, syscall.ENOSPC) && s.spendReserve() {
		err = op()
	}
	s.health.mu.Lock()
	was := s.health.writeErr
	s.health.writeErr = err
	s.health.mu.Unlock()
	switch {
	case err != nil && was == nil:
		s.log.Error("metadata store: a write failed; metadata writes clients ask for are refused until one succeeds", "dir", s.dir, "err", err)
	case err == nil && was != nil:
		s.log.Info("metadata store: writes succeed again", "dir", s.dir)
	}
	return err
}

// Health is nil while the store can write, and otherwise why not: its last write failed, or
// it is spending its reserve on a full disk. An unhealthy store tries, at most once per
// ProbeInterval, to write again (its reserve, or a probe file) and is healthy once that works.
func (s *Store) Health() error {
	err := s.health.err()
	if err == nil {
		return nil
	}
	s.health.mu.Lock()
	due := time.Since(s.health.lastProbe) >= ProbeInterval
	if due {
		s.health.lastProbe = time.Now()
	}
	s.health.mu.Unlock()
	if !due || !s.health.probing.TryLock() {
		return err
	}
	defer s.health.probing.Unlock()
	if perr := s.probe(); perr != nil {
		return err
	}
	s.health.mu.Lock()
	if s.health.writeErr != nil {
		s.health.writeErr = nil
		s.log.Info("metadata store: a probe write succeeded; writes are accepted again", "dir", s.dir)
	}
	s.health.mu.Unlock()
	s.setOnReserve(false)
	return s.health.err()
}

// probe makes the reserve again if it is spent, else writes and removes a small file.
func (s *Store) probe() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	name := filepath.Join(s.dir, reserveFile)
	if !vfs.Exists(s.fs, name) {
		return s.makeReserve()
	}
	probe := filepath.Join(s.dir, "probe")
	err := vfs.WriteFileDurably(s.fs, probe, make([]byte, 4096))
	if rerr := s.fs.Remove(probe); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}
