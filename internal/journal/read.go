package journal

import (
	"fmt"
	"sort"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// FileRange is a run of whole batches in a segment file: bytes [Pos, Pos+Len) of File.
type FileRange struct {
	File     vfs.File
	Pos, Len int64
}

// ReadResult is what a Read found.
type ReadResult struct {
	Ranges []FileRange
	Size   int64 // sum of the ranges' lengths
	// FirstOffset is the base offset of the first batch returned and NextOffset the offset
	// after the last one, so NextOffset-FirstOffset records (less compacted gaps) were read.
	FirstOffset, NextOffset int64
}

// segmentView is a segment as a reader sees it at one moment.
type segmentView struct {
	seg          *segment
	index        []indexEntry
	size, next   int64
	maxTimestamp int64
}

func (l *Log) viewsFrom(offset int64) []segmentView {
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].base > offset })
	if i > 0 {
		i--
	}
	views := make([]segmentView, 0, len(l.segments)-i)
	for _, s := range l.segments[i:] {
		views = append(views, segmentView{seg: s, index: s.index, size: s.size.Load(), next: s.next, maxTimestamp: s.maxTimestamp})
	}
	return views
}

// Read returns the batches from the one containing offset onward, at most maxBytes in all
// and none whose records reach maxOffset (pass the high watermark). With minOneBatch the
// first batch comes back even when it alone exceeds maxBytes (KIP-74). Reading at the end
// returns nothing; below the log start or past the end is ErrOffsetOutOfRange.
//
// The files stay open for at least Config.FileDeleteDelay after their segment is deleted,
// so the caller can send from them. A concurrent Truncate may shorten a file under a
// reader; the caller must treat a short read as the end.
func (l *Log) Read(offset, maxBytes, maxOffset int64, minOneBatch bool) (ReadResult, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ReadResult{}, ErrClosed
	}
	start, end := l.logStart, l.logEnd
	if offset < start || offset > end {
		l.mu.RUnlock()
		return ReadResult{}, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
	}
	maxOffset = min(maxOffset, end)
	if offset >= maxOffset {
		l.mu.RUnlock()
		return ReadResult{}, nil
	}
	views := l.viewsFrom(offset)
	l.mu.RUnlock()

	var res ReadResult
	remaining := maxBytes
	for _, v := range views {
		if v.seg.base >= maxOffset || (remaining <= 0 && !(minOneBatch && res.Size == 0)) {
			break
		}
		startPos, first, err := v.seg.lookup(v.index, offset, v.size)
		if err != nil {
			return res, err
		}
		if startPos >= v.size {
			continue
		}
		endPos := v.size
		if maxOffset < v.next {
			if endPos, _, err = v.seg.lookup(v.index, maxOffset, v.size); err != nil {
				return res, err
			}
		}
		if endPos <= startPos {
			break
		}
		if endPos-startPos > remaining {
			cut, err := v.seg.boundaryAtOrBefore(v.index, startPos, startPos+remaining, endPos)
			if err != nil {
				return res, err
			}
			if cut == startPos && minOneBatch && res.Size == 0 {
				cut = startPos + int64(first.Size())
			}
			if cut > startPos {
				res.add(v, first, startPos, cut)
				res.NextOffset, err = v.seg.offsetAt(cut, v.size, v.next)
			}
			return res, err
		}
		res.add(v, first, startPos, endPos)
		remaining -= endPos - startPos
		if endPos < v.size {
			res.NextOffset, err = v.seg.offsetAt(endPos, v.size, v.next)
			return res, err
		}
		res.NextOffset = v.next
		offset = v.next
	}
	return res, nil
}

func (r *ReadResult) add(v segmentView, first record.Header, from, to int64) {
	if len(r.Ranges) == 0 {
		r.FirstOffset = first.BaseOffset
	}
	r.Ranges = append(r.Ranges, FileRange{File: v.seg.file, Pos: from, Len: to - from})
	r.Size += to - from
}

// offsetAt is the base offset of the batch at pos, or next at the end of the segment.
func (s *segment) offsetAt(pos, size, next int64) (int64, error) {
	if pos >= size {
		return next, nil
	}
	var buf [record.HeaderSize]byte
	h, err := s.readHeader(pos, size, buf[:])
	if err != nil {
		return 0, fmt.Errorf("segment %d at %d: %w", s.base, pos, err)
	}
	return h.BaseOffset, nil
}

// ReadBytes is Read that copies the batches into memory.
func (l *Log) ReadBytes(offset, maxBytes, maxOffset int64, minOneBatch bool) ([]byte, error) {
	res, err := l.Read(offset, maxBytes, maxOffset, minOneBatch)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, res.Size)
	for _, r := range res.Ranges {
		n := len(out)
		out = out[:n+int(r.Len)]
		if _, err := r.File.ReadAt(out[n:], r.Pos); err != nil {
			return nil, fmt.Errorf("read %d bytes at %d: %w", r.Len, r.Pos, readError(err))
		}
	}
	return out, nil
}

// OffsetForTimestamp finds the first record whose timestamp is >= ts, for ListOffsets.
// It searches the time index, then decodes the one batch that holds the answer.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	l.mu.RLock()
	start := l.logStart
	views := l.viewsFrom(start)
	l.mu.RUnlock()
	var buf [record.HeaderSize]byte
	for _, v := range views {
		if v.maxTimestamp < ts {
			continue
		}
		i := sort.Search(len(v.index), func(i int) bool { return v.index[i].maxTsBefore >= ts })
		pos := int64(0)
		if i > 0 {
			pos = int64(v.index[i-1].pos)
		}
		for pos < v.size {
			h, err := v.seg.readHeader(pos, v.size, buf[:])
			if err != nil {
				return 0, 0, false, err
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= start {
				off, rts, ok, err := v.seg.firstRecordAtOrAfter(pos, h, ts, start)
				if err != nil || ok {
					return off, rts, ok, err
				}
			}
			pos += int64(h.Size())
		}
	}
	return 0, 0, false, nil
}

// firstRecordAtOrAfter decodes the batch at pos and returns its first record (at or after
// minOffset) with a timestamp >= ts.
func (s *segment) firstRecordAtOrAfter(pos int64, h record.Header, ts, minOffset int64) (int64, int64, bool, error) {
	b := make([]byte, h.Size())
	if _, err := s.file.ReadAt(b, pos); err != nil {
		return 0, 0, false, err
	}
	if h.TimestampType() == 1 {
		return max(h.BaseOffset, minOffset), h.MaxTimestamp, true, nil
	}
	recs, err := record.Records(b)
	if err != nil {
		return 0, 0, false, err
	}
	for _, r := range recs {
		off, rts := h.BaseOffset+int64(r.OffsetDelta), h.BaseTimestamp+r.TimestampDelta
		if off >= minOffset && rts >= ts {
			return off, rts, true, nil
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp returns the largest record timestamp in the log and the offset of the first
// record carrying it (KIP-734); (-1, -1) when the log is empty.
func (l *Log) MaxTimestamp() (timestamp, offset int64) {
	l.mu.RLock()
	var best *segmentView
	views := l.viewsFrom(l.logStart)
	start := l.logStart
	l.mu.RUnlock()
	for i := range views {
		if views[i].size > 0 && views[i].maxTimestamp >= 0 && (best == nil || views[i].maxTimestamp > best.maxTimestamp) {
			best = &views[i]
		}
	}
	if best == nil {
		return -1, -1
	}
	var buf [record.HeaderSize]byte
	h, err := best.seg.readHeader(best.seg.maxTimestampPos, best.size, buf[:])
	if err != nil {
		return best.maxTimestamp, -1
	}
	off, _, ok, err := best.seg.firstRecordAtOrAfter(best.seg.maxTimestampPos, h, h.MaxTimestamp, start)
	if err != nil || !ok {
		return h.MaxTimestamp, h.LastOffset()
	}
	return h.MaxTimestamp, off
}
