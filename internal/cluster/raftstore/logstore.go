package raftstore

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/raft"
)

var errClosed = errors.New("metadata store closed")

// FirstIndex is the index of the oldest entry, 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.empty() {
		return 0, nil
	}
	return s.first, nil
}

// LastIndex is the index of the newest entry, 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.empty() {
		return 0, nil
	}
	return s.lastIndex(), nil
}

func (s *Store) empty() bool {
	return len(s.segments) == 0 || s.lastIndex() < s.first
}

func (s *Store) lastIndex() uint64 { return s.segments[len(s.segments)-1].last() }

// GetLog reads the entry at index from its segment, checking its CRC again: a bit that
// flipped on disk since Open is reported as damage, never handed to raft.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	if s.empty() || index < s.first || index > s.lastIndex() {
		return raft.ErrLogNotFound
	}
	seg := s.segmentOf(index)
	i := index - seg.base
	start, end := seg.offsets[i], seg.size
	if i+1 < uint64(len(seg.offsets)) {
		end = seg.offsets[i+1]
	}
	rec := make([]byte, end-start)
	if _, err := seg.file.ReadAt(rec, start); err != nil {
		return fmt.Errorf("read entry %d from %s: %w", index, seg.path, err)
	}
	size, sum := frameLength(rec)
	if int64(size) != end-start-recordHeader || !checkPayload(rec[recordHeader:], sum) {
		return fmt.Errorf("%w: segment %s: entry %d at %d fails its checksum", ErrDamaged, seg.path, index, start)
	}
	if err := decodePayload(rec[recordHeader:], out); err != nil || out.Index != index {
		return fmt.Errorf("%w: segment %s: entry %d at %d does not decode (%v)", ErrDamaged, seg.path, index, start, err)
	}
	return nil
}

// segmentOf finds the segment holding index, which must be in the log.
func (s *Store) segmentOf(index uint64) *segment {
	lo, hi := 0, len(s.segments)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if s.segments[mid].base <= index {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return s.segments[lo]
}

// StoreLog appends one entry.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries that follow the log's last one (or start an empty log) and
// returns once they are durable: one write and one sync for the whole batch.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for i, l := range logs[1:] {
		if l.Index != logs[i].Index+1 {
			return fmt.Errorf("store entries: index %d follows %d", l.Index, logs[i].Index)
		}
	}
	if !s.empty() {
		if want := s.lastIndex() + 1; logs[0].Index != want {
			return fmt.Errorf("store entries: index %d does not follow the last entry %d", logs[0].Index, want-1)
		}
	}
	return s.write(func() error { return s.appendLogs(logs) })
}

// appendLogs writes and syncs entries that StoreLogs has checked.
func (s *Store) appendLogs(logs []*raft.Log) error {
	if s.empty() {
		if err := s.restart(logs[0].Index); err != nil {
			return err
		}
	}
	seg := s.segments[len(s.segments)-1]
	if seg.size >= s.segSize && len(seg.offsets) > 0 {
		var err error
		if seg, err = s.newSegment(logs[0].Index); err != nil {
			return err
		}
	}
	buf := s.buf[:0]
	offsets := make([]int64, 0, len(logs))
	for _, l := range logs {
		offsets = append(offsets, seg.size+int64(len(buf)))
		buf = appendRecord(buf, l)
	}
	s.buf = buf
	if _, err := seg.file.WriteAt(buf, seg.size); err != nil {
		return fmt.Errorf("append to %s: %w", seg.path, err)
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", seg.path, err)
	}
	seg.offsets = append(seg.offsets, offsets...)
	seg.size += int64(len(buf))
	if cap(s.buf) > 4*int(s.segSize) {
		s.buf = nil // do not keep a huge batch's buffer
	}
	return nil
}

// restart makes an empty log begin at index: it drops any leftover segment, records the
// first index durably, then creates the segment.
func (s *Store) restart(index uint64) error {
	for _, seg := range s.segments {
		if err := s.removeSegment(seg); err != nil {
			return err
		}
	}
	s.segments = nil
	if err := s.writeFirst(index); err != nil {
		return err
	}
	_, err := s.newSegment(index)
	return err
}

// newSegment creates the segment starting at base and makes its name durable.
func (s *Store) newSegment(base uint64) (*segment, error) {
	path := segmentPath(s.dir, base)
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		return nil, err
	}
	seg := &segment{base: base, path: path, file: f}
	s.segments = append(s.segments, seg)
	return seg, nil
}

// DeleteRange removes entries min..max inclusive. Raft removes either a prefix (after a
// snapshot) or a suffix (entries a new leader overrules); a range strictly inside the log
// is refused, since removing it would leave a hole.
func (s *Store) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.empty() || min > max {
		return nil
	}
	first, last := s.first, s.lastIndex()
	switch {
	case min <= first && max >= last:
		// Everything: record the new first index, then drop the files.
		if err := s.writeFirst(max + 1); err != nil {
			return err
		}
		return s.dropBelowFirst()
	case min <= first:
		if max < first {
			return nil
		}
		if err := s.writeFirst(max + 1); err != nil {
			return err
		}
		return s.dropBelowFirst()
	case max >= last:
		if min > last {
			return nil
		}
		return s.truncateFrom(min)
	default:
		return fmt.Errorf("delete entries %d..%d: inside the log %d..%d", min, max, first, last)
	}
}

// truncateFrom removes the entries from index on: newest segments first, so that a crash
// part-way leaves a log without holes.
func (s *Store) truncateFrom(index uint64) error {
	for len(s.segments) > 1 && s.segments[len(s.segments)-1].base >= index {
		seg := s.segments[len(s.segments)-1]
		if err := s.removeSegment(seg); err != nil {
			return err
		}
		s.segments = s.segments[:len(s.segments)-1]
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	seg := s.segments[len(s.segments)-1]
	keep := index - seg.base
	if keep >= uint64(len(seg.offsets)) {
		return nil
	}
	size := seg.offsets[keep]
	if err := seg.file.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s: %w", seg.path, err)
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", seg.path, err)
	}
	seg.offsets, seg.size = seg.offsets[:keep], size
	return nil
}
