package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// indexEntry is one sparse index point: the batch at pos starts at base+relOffset, and every
// batch before it in the segment has timestamps <= maxTsBefore.
type indexEntry struct {
	relOffset   uint32
	pos         uint32
	maxTsBefore int64
}

// segment is one .log file and its in-memory indexes. Fields other than size are guarded by
// the owning Log's mutex; size is published after each complete append so readers can read
// up to it without the lock.
type segment struct {
	base  int64
	path  string
	file  vfs.File
	size  atomic.Int64
	next  int64 // offset after the last batch
	index []indexEntry
	// aborted is the aborted-transaction index (txn.go), ordered by marker offset.
	aborted []AbortedTxn

	maxTimestamp    int64 // largest batch max timestamp, -1 if none
	maxTimestampPos int64 // position of the batch holding it
	firstBatchTime  int64 // max timestamp of the first batch
	created         int64 // ms since the epoch when the segment was started, for segment.ms
	bytesSinceIndex int
	indexDirty      bool // index differs from the files on disk
}

func segmentName(base int64, ext string) string { return fmt.Sprintf("%020d%s", base, ext) }

func parseSegmentName(name, ext string) (int64, bool) {
	if !strings.HasSuffix(name, ext) || len(name) != 20+len(ext) {
		return 0, false
	}
	base, err := strconv.ParseInt(strings.TrimSuffix(name, ext), 10, 64)
	return base, err == nil && base >= 0
}

func createSegment(fs vfs.FS, dir string, base, now int64) (*segment, error) {
	path := filepath.Join(dir, segmentName(base, ".log"))
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	return &segment{base: base, path: path, file: f, next: base, maxTimestamp: -1, firstBatchTime: -1, created: now}, nil
}

func openSegment(fs vfs.FS, dir string, base int64) (*segment, error) {
	path := filepath.Join(dir, segmentName(base, ".log"))
	f, err := fs.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment %d: %w", base, err)
	}
	// The modification time stands in for the creation time until an index trailer, written
	// at the last clean close or roll, says better.
	s := &segment{base: base, path: path, file: f, next: base, maxTimestamp: -1, firstBatchTime: -1, created: st.ModTime().UnixMilli()}
	s.size.Store(st.Size())
	return s, nil
}

// readHeader reads the batch header at pos, within limit.
func (s *segment) readHeader(pos, limit int64, buf []byte) (record.Header, error) {
	if pos+record.HeaderSize > limit {
		return record.Header{}, io.ErrUnexpectedEOF
	}
	if _, err := s.file.ReadAt(buf[:record.HeaderSize], pos); err != nil {
		return record.Header{}, readError(err)
	}
	h, err := record.ParseHeader(buf)
	if err != nil {
		return h, err
	}
	if _, err := record.PeekSize(buf); err != nil {
		return h, err
	}
	if pos+int64(h.Size()) > limit {
		return h, io.ErrUnexpectedEOF
	}
	return h, nil
}

// floorByOffset is the last index entry at or before offset, or a zero entry.
func floorByOffset(idx []indexEntry, base, offset int64) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return base+int64(idx[i].relOffset) > offset })
	if i == 0 {
		return indexEntry{maxTsBefore: -1}
	}
	return idx[i-1]
}

// floorByPosition is the last index entry at or before pos, or a zero entry.
func floorByPosition(idx []indexEntry, pos int64) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return int64(idx[i].pos) > pos })
	if i == 0 {
		return indexEntry{maxTsBefore: -1}
	}
	return idx[i-1]
}

// lookup finds the position of the first batch whose last offset is >= offset, scanning
// batch headers forward from the nearest index entry. It returns size when every batch
// ends before offset. The header found is returned when pos < size.
func (s *segment) lookup(idx []indexEntry, offset, size int64) (int64, record.Header, error) {
	var buf [record.HeaderSize]byte
	pos := int64(floorByOffset(idx, s.base, offset).pos)
	for pos < size {
		h, err := s.readHeader(pos, size, buf[:])
		if err != nil {
			return pos, h, fmt.Errorf("segment %d at %d: %w", s.base, pos, err)
		}
		if h.LastOffset() >= offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return size, record.Header{}, nil
}

// boundaryAtOrBefore is the largest batch boundary <= limit, starting from a known boundary
// start (so the result is >= start).
func (s *segment) boundaryAtOrBefore(idx []indexEntry, start, limit, size int64) (int64, error) {
	var buf [record.HeaderSize]byte
	pos := int64(floorByPosition(idx, limit).pos)
	if pos < start {
		pos = start
	}
	for pos < size {
		h, err := s.readHeader(pos, size, buf[:])
		if err != nil {
			return pos, fmt.Errorf("segment %d at %d: %w", s.base, pos, err)
		}
		if pos+int64(h.Size()) > limit {
			break
		}
		pos += int64(h.Size())
	}
	return pos, nil
}

// noteBatch updates the in-memory indexes and summary for a batch written at pos.
// Called with the Log's mutex held (or during single-threaded recovery).
func (s *segment) noteBatch(h record.Header, pos int64, indexInterval int) {
	if pos == 0 {
		s.firstBatchTime = h.MaxTimestamp
	}
	if s.bytesSinceIndex >= indexInterval || len(s.index) == 0 && pos > 0 {
		s.index = append(s.index, indexEntry{relOffset: uint32(h.BaseOffset - s.base), pos: uint32(pos), maxTsBefore: s.maxTimestamp})
		s.bytesSinceIndex = 0
		s.indexDirty = true
	}
	s.bytesSinceIndex += h.Size()
	if h.MaxTimestamp > s.maxTimestamp {
		s.maxTimestamp = h.MaxTimestamp
		s.maxTimestampPos = pos
	}
	s.next = h.NextOffset()
}

// scanResult is what a full scan of a segment found.
type scanResult struct {
	validEnd int64 // position after the last good batch
	err      error // why the scan stopped early, nil at a clean end
}

// rebuild scans every batch of the segment from the start, rebuilding the indexes and
// summary. With verify, each batch's CRC is checked too. It stops at the first torn or
// invalid batch and reports where the good prefix ends; each good batch is passed to visit.
func (s *segment) rebuild(indexInterval int, verify bool, visit func(h record.Header)) scanResult {
	s.index, s.bytesSinceIndex, s.maxTimestamp, s.maxTimestampPos, s.firstBatchTime = nil, 0, -1, 0, -1
	s.next = s.base
	size := s.size.Load()
	var hbuf [record.HeaderSize]byte
	var body []byte
	prevNext := s.base
	pos := int64(0)
	for pos < size {
		h, err := s.readHeader(pos, size, hbuf[:])
		if err != nil {
			return scanResult{validEnd: pos, err: err}
		}
		if verify {
			if cap(body) < h.Size() {
				body = make([]byte, h.Size())
			}
			body = body[:h.Size()]
			if _, err := s.file.ReadAt(body, pos); err != nil {
				return scanResult{validEnd: pos, err: err}
			}
			if _, err := record.Validate(body); err != nil {
				return scanResult{validEnd: pos, err: err}
			}
		}
		if h.BaseOffset < prevNext {
			return scanResult{validEnd: pos, err: fmt.Errorf("%w: offset %d after %d", ErrCorrupt, h.BaseOffset, prevNext)}
		}
		prevNext = h.NextOffset()
		s.noteBatch(h, pos, indexInterval)
		if visit != nil {
			visit(h)
		}
		pos += int64(h.Size())
	}
	s.indexDirty = true
	return scanResult{validEnd: pos}
}

// truncateTo cuts the file at pos (a batch boundary) and drops index entries past it.
func (s *segment) truncateTo(pos int64, indexInterval int) error {
	if err := s.file.Truncate(pos); err != nil {
		return fmt.Errorf("truncate segment %d to %d: %w", s.base, pos, err)
	}
	s.size.Store(pos)
	// Rebuilding from the remaining bytes keeps the summary exact; index entries are copied
	// so readers holding the old slice never see them rewritten.
	res := s.rebuild(indexInterval, false, nil)
	if res.err != nil && !errors.Is(res.err, io.ErrUnexpectedEOF) {
		return res.err
	}
	return nil
}
