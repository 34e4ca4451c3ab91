package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/strand-data/strand/internal/record"
)

// ErrDamaged: a batch's bytes on disk no longer match their CRC (or its framing is broken),
// found by the scrubber or when serving a follower. The broker answers KAFKA_STORAGE_ERROR
// for the damaged range.
var ErrDamaged = errors.New("log damaged")

// damageState remembers the lowest offset known damaged.
type damageState struct {
	mu     sync.Mutex
	from   int64
	set    bool
	lostTo int64 // the recovery point when records below it were found missing at Open
}

// Damaged reports the first offset of the lowest damaged batch found since Open, if any.
// Everything from there on is suspect until the log is repaired (truncated below it and
// re-fetched from the leader), which is a later step of issue 8.
func (l *Log) Damaged() (from int64, ok bool) {
	l.damage.mu.Lock()
	defer l.damage.mu.Unlock()
	return l.damage.from, l.damage.set
}

// MarkDamaged records damage starting at offset from. It reports whether this is new
// (lower than what was known), so callers log each damage once.
func (l *Log) MarkDamaged(from int64) bool {
	l.damage.mu.Lock()
	defer l.damage.mu.Unlock()
	if l.damage.set && l.damage.from <= from {
		return false
	}
	l.damage.from, l.damage.set = from, true
	return true
}

// forgetDamageFrom clears the damage mark when the log was truncated to end at or before
// it: the damaged bytes are gone (the repair path truncates, then re-fetches).
func (l *Log) forgetDamageFrom(end int64) {
	l.damage.mu.Lock()
	defer l.damage.mu.Unlock()
	if l.damage.set && l.damage.from >= end {
		l.damage.set, l.damage.lostTo = false, 0
	}
}

// Damage is one damaged batch found in a segment.
type Damage struct {
	Segment     string // file path
	Position    int64
	FirstOffset int64
	LastOffset  int64 // -1: to the end of the segment is unknown
	Err         error
	New         bool // lowered the log's damage mark (MarkDamaged returned true)
}

// DamageError is ValidateRead's error for a damaged batch; it wraps ErrDamaged.
type DamageError struct{ Damage Damage }

func (e *DamageError) Error() string {
	return fmt.Sprintf("%v: %s at %d (offset %d): %v", ErrDamaged, e.Damage.Segment, e.Damage.Position, e.Damage.FirstOffset, e.Damage.Err)
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// ScrubResult is what one Scrub call did.
type ScrubResult struct {
	// Next is where the next call continues; after the last closed segment it is the log
	// start again, and Wrapped is set.
	Next    int64
	Wrapped bool
	Bytes   int64
	Damage  []Damage
}

// Scrub re-reads closed segments from offset from, at most about maxBytes, taking every
// batch's bytes from throttle first, and validates each batch's framing and CRC-32C. The
// active segment is left alone: its tail is validated at recovery and its batches were
// validated on append. Damage found is recorded with MarkDamaged and returned. A segment
// that changes underneath (retention, cleaning, truncation) is skipped, never reported.
func (l *Log) Scrub(ctx context.Context, from, maxBytes int64, throttle *Throttle) (ScrubResult, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ScrubResult{}, ErrClosed
	}
	from = max(from, l.logStart)
	start := l.logStart
	var views []segmentView
	if from < l.logEnd {
		views = l.viewsFrom(from)
		views = views[:len(views)-1] // the active segment
	}
	l.mu.RUnlock()

	res := ScrubResult{Next: from}
	for _, v := range views {
		if v.next <= from {
			continue
		}
		pos := int64(0)
		if from > v.seg.base {
			if p, _, err := v.seg.lookup(v.index, from, v.size); err == nil {
				pos = p
			}
		}
		next, err := l.scrubSegment(ctx, v, pos, maxBytes, throttle, &res)
		if err != nil || next < 0 {
			return res, err
		}
		res.Next = v.next
		from = v.next
		if res.Bytes >= maxBytes {
			return res, nil
		}
	}
	res.Next, res.Wrapped = start, true
	return res, nil
}

// scrubSegment validates batches of v from pos until the end or the byte budget. It
// returns -1 when it stopped early (res.Next says where to resume), else the segment end.
func (l *Log) scrubSegment(ctx context.Context, v segmentView, pos, maxBytes int64, throttle *Throttle, res *ScrubResult) (int64, error) {
	var head [record.HeaderSize]byte
	var body []byte
	expect := v.seg.base
	for pos < v.size {
		if res.Bytes >= maxBytes {
			return -1, nil
		}
		if _, err := v.seg.file.ReadAt(head[:], pos); err != nil {
			return -1, nil // the segment changed or was retired under us: try again next time
		}
		n, err := record.PeekSize(head[:])
		if err == nil && pos+int64(n) > v.size {
			err = fmt.Errorf("batch of %d bytes runs past the segment end %d", n, v.size)
		}
		if err != nil {
			// Framing is lost: the rest of the segment is suspect.
			l.noteDamage(v, pos, max(expect, res.Next), v.next-1, err, res)
			return v.size, nil
		}
		if err := throttle.Wait(ctx, int64(n)); err != nil {
			return -1, err
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := v.seg.file.ReadAt(body, pos); err != nil {
			return -1, nil
		}
		res.Bytes += int64(n)
		h, err := record.Validate(body)
		first := max(expect, res.Next)
		if err != nil {
			last := v.next - 1
			if h.LastOffsetDelta >= 0 && h.LastOffset() >= first && h.LastOffset() < v.next {
				last = h.LastOffset()
			}
			l.noteDamage(v, pos, first, last, err, res)
			expect = last + 1
		} else {
			expect = h.NextOffset()
			res.Next = expect
		}
		pos += int64(n)
	}
	return v.size, nil
}

// noteDamage records damage unless the segment changed under the reader since its view
// was taken (then the bytes read may mix old and new contents).
func (l *Log) noteDamage(v segmentView, pos, first, last int64, err error, res *ScrubResult) {
	l.mu.RLock()
	current := false
	for i, s := range l.segments {
		if s == v.seg {
			current = i < len(l.segments)-1 && s.size.Load() == v.size
		}
	}
	l.mu.RUnlock()
	if !current {
		return
	}
	d := Damage{Segment: v.seg.path, Position: pos, FirstOffset: first, LastOffset: last, Err: err}
	d.New = l.MarkDamaged(first)
	res.Damage = append(res.Damage, d)
}

// ValidateRead checks the CRC of every batch a Read returned, reading them from the files.
// The leader calls it before sending batches to a follower, so that damage on its disk is
// not replicated. Damage is recorded with MarkDamaged and returned as a *DamageError; a
// short read (a concurrent truncation) is returned as an ordinary error.
func (l *Log) ValidateRead(r ReadResult) error {
	var buf []byte
	expect := r.FirstOffset
	for _, fr := range r.Ranges {
		if cap(buf) < int(fr.Len) {
			buf = make([]byte, fr.Len)
		}
		b := buf[:fr.Len]
		if _, err := fr.File.ReadAt(b, fr.Pos); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("validate read: segment shortened under the reader: %w", err)
			}
			return fmt.Errorf("validate read: %w", readError(err))
		}
		for pos := 0; pos < len(b); {
			n, err := record.PeekSize(b[pos:])
			if err == nil && n > len(b)-pos {
				err = fmt.Errorf("batch of %d bytes runs past the %d read", n, len(b)-pos)
			}
			var h record.Header
			if err == nil {
				h, err = record.Validate(b[pos : pos+n])
			}
			if err != nil {
				d := Damage{Segment: fr.File.Name(), Position: fr.Pos + int64(pos), FirstOffset: expect, LastOffset: -1, Err: err}
				d.New = l.MarkDamaged(expect)
				return &DamageError{Damage: d}
			}
			expect = h.NextOffset()
			pos += n
		}
	}
	return nil
}
