package journal

import (
	"errors"
	"fmt"
	"io"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// boundary is what verification learned about the batch starting at a position.
type boundary struct {
	base        int64
	maxTsBefore int64 // largest max timestamp of the batches before it in the segment, -1 if none
	control     bool  // a control batch (transaction marker)
}

// segmentScan is the result of reading one segment file batch by batch.
type segmentScan struct {
	size        int64
	batches     int
	firstOffset int64
	next        int64 // offset after the last good batch (the segment base when none)

	maxTimestamp, maxTimestampPos, firstBatchTime int64
	boundaries                                    map[int64]boundary
	problems                                      []scanProblem
}

// scanProblem is a bad stretch of a segment. tail means nothing valid follows it.
type scanProblem struct {
	pos         int64
	first, last int64
	detail      string
	tail        bool
}

// scanSegmentFile reads the segment at path for reading only and validates every batch:
// length and magic, CRC-32C, offsets increasing. After a bad batch whose length field is
// sane it resynchronizes at the next batch so that later damage is reported too; when the
// length is not trustworthy the rest of the file is one problem.
func scanSegmentFile(fs vfs.FS, path string, base int64) (segmentScan, error) {
	f, err := vfs.Open(fs, path)
	if err != nil {
		return segmentScan{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segmentScan{}, err
	}
	s := segmentScan{size: st.Size(), firstOffset: -1, next: base, maxTimestamp: -1, firstBatchTime: -1, boundaries: map[int64]boundary{}}
	expected := base
	var head [record.HeaderSize]byte
	var body []byte
	pos := int64(0)
	for pos < s.size {
		avail := min(int64(record.HeaderSize), s.size-pos)
		if _, err := f.ReadAt(head[:avail], pos); err != nil && !errors.Is(err, io.EOF) {
			return s, fmt.Errorf("read at %d: %w", pos, err)
		}
		n, err := record.PeekSize(head[:avail])
		if err != nil {
			detail := fmt.Sprintf("%d bytes that are not a batch: %v", s.size-pos, err)
			if avail < record.HeaderSize && allZero(head[:avail]) || avail <= 16 {
				detail = fmt.Sprintf("torn batch header: %d bytes at the end of the file", s.size-pos)
			}
			s.problems = append(s.problems, scanProblem{pos: pos, first: expected, last: -1, detail: detail, tail: true})
			break
		}
		if pos+int64(n) > s.size {
			s.problems = append(s.problems, scanProblem{pos: pos, first: expected, last: -1, tail: true,
				detail: fmt.Sprintf("torn batch: %d of its %d bytes present", s.size-pos, n)})
			break
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := f.ReadAt(body, pos); err != nil {
			return s, fmt.Errorf("read at %d: %w", pos, err)
		}
		h, err := record.Validate(body)
		if err != nil {
			last := int64(-1)
			if h.LastOffsetDelta >= 0 && h.BaseOffset >= expected {
				last = h.LastOffset()
			}
			s.problems = append(s.problems, scanProblem{pos: pos, first: expected, last: last, tail: pos+int64(n) == s.size,
				detail: fmt.Sprintf("batch of %d bytes: %v", n, err)})
			if last >= 0 {
				expected = last + 1
			}
			pos += int64(n)
			continue
		}
		if h.BaseOffset < expected {
			s.problems = append(s.problems, scanProblem{pos: pos, first: h.BaseOffset, last: h.LastOffset(), tail: pos+int64(n) == s.size,
				detail: fmt.Sprintf("batch offsets [%d, %d] do not follow the previous batch ending before %d", h.BaseOffset, h.LastOffset(), expected)})
			pos += int64(n)
			continue
		}
		s.boundaries[pos] = boundary{base: h.BaseOffset, maxTsBefore: s.maxTimestamp, control: h.IsControl()}
		if s.batches == 0 {
			s.firstOffset = h.BaseOffset
		}
		if pos == 0 {
			s.firstBatchTime = h.MaxTimestamp
		}
		if h.MaxTimestamp > s.maxTimestamp {
			s.maxTimestamp, s.maxTimestampPos = h.MaxTimestamp, pos
		}
		s.batches++
		s.next = h.NextOffset()
		expected = s.next
		pos += int64(n)
	}
	return s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
