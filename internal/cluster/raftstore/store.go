package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// Options configures a Store.
type Options struct {
	FS vfs.FS // nil is vfs.OS
	// SegmentSize is the size past which appends go to a new segment; 0 is 16 MiB.
	SegmentSize int64
	Logger      *slog.Logger
}

// firstIndexFile durably holds the index of the first entry the log still has: a prefix
// deletion writes it before removing whole segments, which hides the deleted entries of a
// segment it only partly covers, and makes the removal safe to interrupt.
const firstIndexFile = "first-index"

// Store is raft's log and stable store in one directory. It is safe for concurrent use.
type Store struct {
	fs      vfs.FS
	dir     string
	segSize int64
	log     *slog.Logger

	mu       sync.RWMutex
	segments []*segment // in index order, consecutive, the last one open for appends
	first    uint64     // first index the log holds; meaningful when it holds any
	stable   map[string][]byte
	buf      []byte // reused to encode appends
	closed   bool
	health   health
}

var _ raft.LogStore = (*Store)(nil)
var _ raft.StableStore = (*Store)(nil)

// Open opens (creating if needed) the store in dir, checking every segment and the stable
// file. It truncates an unfinished record at the very end of the newest segment; any other
// failed check is an error wrapping ErrDamaged, and then nothing has been changed on disk.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{fs: vfs.Or(opts.FS), dir: dir, segSize: opts.SegmentSize, log: opts.Logger}
	if s.segSize <= 0 {
		s.segSize = 16 << 20
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := vfs.MkdirAllDurably(s.fs, dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata store dir: %w", err)
	}
	var err error
	if s.stable, err = readStable(s.fs, filepath.Join(dir, stableFile)); err != nil {
		return nil, err
	}
	if err := s.load(false); err != nil {
		s.closeFiles()
		return nil, err
	}
	if err := s.makeReserve(); err != nil {
		s.log.Warn("metadata store: cannot reserve space for a full disk", "err", err)
		s.setOnReserve(true)
	}
	return s, nil
}

// Check runs every check Open makes on the store in dir, and on its snapshots in snapDir,
// without changing anything: files are opened read-only and a torn tail is left in place.
// It is for tools (strand debug verify) that look at a data dir, even one a node is using.
func Check(fsys vfs.FS, dir, snapDir string) error {
	s := &Store{fs: vfs.Or(fsys), dir: dir, log: slog.New(slog.DiscardHandler)}
	var err error
	if s.stable, err = readStable(s.fs, filepath.Join(dir, stableFile)); err != nil {
		return err
	}
	err = s.load(true)
	s.closeFiles()
	if err != nil {
		return err
	}
	snaps := &SnapshotStore{fs: s.fs, dir: snapDir, log: s.log}
	if vfs.Exists(s.fs, snapDir) {
		_, err = snaps.list(false)
	}
	return err
}

// load reads the first index and every segment, checks that they join up, and only then,
// unless readOnly, changes anything on disk (the torn tail, segments wholly below the first
// index).
func (s *Store) load(readOnly bool) error {
	bases, err := listSegments(s.fs, s.dir)
	if err != nil {
		return err
	}
	first, haveFirst, err := s.readFirst()
	if err != nil {
		return err
	}
	if len(bases) > 0 && !haveFirst {
		return fmt.Errorf("%w: %s: segments without %s", ErrDamaged, s.dir, firstIndexFile)
	}
	var tornAt int64 = -1
	for i, base := range bases {
		path := segmentPath(s.dir, base)
		flag := os.O_RDWR
		if readOnly {
			flag = os.O_RDONLY
		}
		f, err := s.fs.OpenFile(path, flag, 0)
		if err != nil {
			return fmt.Errorf("open segment %s: %w", path, err)
		}
		seg := &segment{base: base, path: path, file: f}
		s.segments = append(s.segments, seg)
		res, err := scanSegment(f, base)
		if err != nil {
			return fmt.Errorf("read segment %s: %w", path, err)
		}
		seg.offsets, seg.size = res.offsets, res.end
		newest := i == len(bases)-1
		if res.problem != "" && !(newest && res.torn) {
			return fmt.Errorf("%w: segment %s: %s", ErrDamaged, path, res.problem)
		}
		if res.problem != "" {
			s.log.Info("metadata log: dropping an unfinished record at the end", "segment", path, "detail", res.problem)
			tornAt = res.end
		}
		if i > 0 {
			prev := s.segments[i-1]
			if len(prev.offsets) == 0 || prev.last()+1 != base {
				return fmt.Errorf("%w: segment %s starts at %d but the one before ends at %d", ErrDamaged, path, base, prev.last())
			}
		}
	}
	if n := len(s.segments); n > 0 && first < s.segments[0].base {
		return fmt.Errorf("%w: %s: first index %d, but the oldest segment starts at %d", ErrDamaged, s.dir, first, s.segments[0].base)
	}
	s.first = first
	if readOnly {
		return nil
	}
	// Checks are done; now repair what a crash may have left half-done.
	if tornAt >= 0 {
		seg := s.segments[len(s.segments)-1]
		if err := seg.file.Truncate(tornAt); err != nil {
			return fmt.Errorf("truncate %s: %w", seg.path, err)
		}
		if err := seg.file.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", seg.path, err)
		}
	}
	return s.dropBelowFirst()
}

// readFirst reads the durable first index.
func (s *Store) readFirst() (uint64, bool, error) {
	payload, err := ReadSealedFile(s.fs, filepath.Join(s.dir, firstIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(payload) != 8 {
		return 0, false, fmt.Errorf("%w: %s holds %d bytes", ErrDamaged, firstIndexFile, len(payload))
	}
	return binary.BigEndian.Uint64(payload), true, nil
}

func (s *Store) writeFirst(first uint64) error {
	if err := WriteSealedFile(s.fs, filepath.Join(s.dir, firstIndexFile), binary.BigEndian.AppendUint64(nil, first)); err != nil {
		return err
	}
	s.first = first
	return nil
}

// dropBelowFirst removes the segments that hold no entry at or past the first index.
func (s *Store) dropBelowFirst() error {
	n := 0
	for n < len(s.segments) && s.segments[n].last() < s.first {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, seg := range s.segments[:n] {
		if err := s.removeSegment(seg); err != nil {
			return err
		}
	}
	s.segments = append(s.segments[:0:0], s.segments[n:]...)
	return s.syncDir()
}

func (s *Store) removeSegment(seg *segment) error {
	seg.file.Close()
	if err := s.fs.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove segment %s: %w", seg.path, err)
	}
	return nil
}

func (s *Store) syncDir() error {
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, err)
	}
	return nil
}

// Close releases the segment files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, seg := range s.segments {
		errs = append(errs, seg.file.Close())
	}
	s.segments = nil
	return errors.Join(errs...)
}
