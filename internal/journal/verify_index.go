package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strand-data/strand/internal/vfs"
)

// verifyIndexes checks a segment's .index and .timeindex against what the scan of the
// segment found: checksum, shape, a trailer describing the segment as it is, and every
// entry pointing at a real batch boundary with the right offset and timestamp. An active
// segment's index is normally older than the segment (it is written at a clean close), so
// only its checksum and shape are checked.
func verifyIndexes(fs vfs.FS, dir string, base int64, scan segmentScan, active bool) []Problem {
	offName, timeName := segmentName(base, ".index"), segmentName(base, ".timeindex")
	offPath, timePath := filepath.Join(dir, offName), filepath.Join(dir, timeName)
	_, errOff := fs.Stat(offPath)
	_, errTime := fs.Stat(timePath)
	offMissing, timeMissing := errors.Is(errOff, os.ErrNotExist), errors.Is(errTime, os.ErrNotExist)
	lastOffset := scan.next - 1
	bad := func(name string, pos int64, format string, args ...any) Problem {
		return Problem{Kind: KindDamage, File: name, Position: pos, FirstOffset: base, LastOffset: lastOffset, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case offMissing && timeMissing:
		if active {
			return nil
		}
		return []Problem{{Kind: KindNotice, File: offName, Position: -1, FirstOffset: -1, LastOffset: -1,
			Detail: "closed segment has no index files (an unclean stop since it was rolled); Open rebuilds them"}}
	case offMissing != timeMissing:
		name := offName
		if timeMissing {
			name = timeName
		}
		return []Problem{bad(name, -1, "missing while its sibling index exists")}
	}
	off, err := readChecked(fs, offPath)
	if err != nil {
		return []Problem{bad(offName, -1, "%v", err)}
	}
	tim, err := readChecked(fs, timePath)
	if err != nil {
		return []Problem{bad(timeName, -1, "%v", err)}
	}
	const t = trailerSize - 4
	if len(off) < t || (len(off)-t)%offsetEntrySize != 0 {
		return []Problem{bad(offName, -1, "%d bytes is not entries plus a trailer", len(off))}
	}
	if len(tim) < t || (len(tim)-t)%timeEntrySize != 0 {
		return []Problem{bad(timeName, -1, "%d bytes is not entries plus a trailer", len(tim))}
	}
	offEntries, timEntries := off[:len(off)-t], tim[:len(tim)-t]
	trailer := off[len(offEntries):]
	if string(trailer) != string(tim[len(timEntries):]) {
		return []Problem{bad(timeName, int64(len(timEntries)), "trailer differs from the offset index's")}
	}
	if len(offEntries)/offsetEntrySize != len(timEntries)/timeEntrySize {
		return []Problem{bad(timeName, -1, "%d entries, the offset index has %d", len(timEntries)/timeEntrySize, len(offEntries)/offsetEntrySize)}
	}
	be := binary.BigEndian
	if indexed := int64(be.Uint64(trailer)); indexed != scan.size {
		if active {
			return nil // stale: written at an earlier close; Open rebuilds it
		}
		return []Problem{bad(offName, int64(len(offEntries)), "trailer describes a segment of %d bytes, the segment has %d", indexed, scan.size)}
	}
	if len(scan.problems) > 0 {
		return nil // the segment's own problems are reported; its boundaries are not trustworthy
	}
	want := []struct {
		name      string
		got, want int64
	}{
		{"next offset", int64(be.Uint64(trailer[8:])), scan.next},
		{"max timestamp", int64(be.Uint64(trailer[16:])), scan.maxTimestamp},
		{"max timestamp position", int64(be.Uint64(trailer[24:])), scan.maxTimestampPos},
		{"first batch time", int64(be.Uint64(trailer[32:])), scan.firstBatchTime},
	}
	for _, w := range want {
		if w.got != w.want {
			return []Problem{bad(offName, int64(len(offEntries)), "trailer %s %d, the segment says %d", w.name, w.got, w.want)}
		}
	}
	var out []Problem
	prevPos := int64(-1)
	for i := 0; i < len(offEntries)/offsetEntrySize; i++ {
		o, tm := offEntries[i*offsetEntrySize:], timEntries[i*timeEntrySize:]
		rel, pos := int64(be.Uint32(o)), int64(be.Uint32(o[4:]))
		tsBefore, timeRel := int64(be.Uint64(tm)), int64(be.Uint32(tm[8:]))
		b, ok := scan.boundaries[pos]
		switch {
		case pos <= prevPos:
			out = append(out, bad(offName, int64(i*offsetEntrySize), "entry %d position %d does not follow %d", i, pos, prevPos))
		case !ok:
			out = append(out, bad(offName, int64(i*offsetEntrySize), "entry %d position %d is not a batch boundary", i, pos))
		case base+rel != b.base:
			out = append(out, bad(offName, int64(i*offsetEntrySize), "entry %d says offset %d at position %d, the batch there starts at %d", i, base+rel, pos, b.base))
		case timeRel != rel:
			out = append(out, bad(timeName, int64(i*timeEntrySize), "entry %d relative offset %d, the offset index says %d", i, timeRel, rel))
		case tsBefore != b.maxTsBefore:
			out = append(out, bad(timeName, int64(i*timeEntrySize), "entry %d max timestamp before %d, the segment says %d", i, tsBefore, b.maxTsBefore))
		}
		prevPos = pos
	}
	return out
}

// verifyTxnIndex checks a segment's .txnindex, if it has one: whole version-0 entries in
// marker order, each marker a control batch of the segment. An active segment's
// file may describe it before a truncation, so only its shape is checked.
func verifyTxnIndex(fs vfs.FS, dir string, base int64, scan segmentScan, active bool) []Problem {
	name := segmentName(base, txnIndexExt)
	b, err := vfs.ReadFile(fs, filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	bad := func(format string, args ...any) []Problem {
		return []Problem{{Kind: KindDamage, File: name, Position: -1, FirstOffset: base, LastOffset: scan.next - 1, Detail: fmt.Sprintf(format, args...)}}
	}
	if err != nil {
		return bad("%v", err)
	}
	entries, err := decodeTxnIndex(b)
	if err != nil {
		return bad("%v", err)
	}
	if active || len(scan.problems) > 0 {
		return nil
	}
	markers := make(map[int64]bool, len(scan.boundaries))
	for _, bd := range scan.boundaries {
		if bd.control {
			markers[bd.base] = true
		}
	}
	for i, a := range entries {
		if !markers[a.LastOffset] {
			return bad("entry %d: no control batch of the segment is at its marker offset %d", i, a.LastOffset)
		}
	}
	return nil
}
