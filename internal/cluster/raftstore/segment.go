package raftstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// A segment is one file of the log, named after the index of its first entry, holding
// consecutive records. Only the newest segment is ever appended to or truncated.
type segment struct {
	base    uint64 // index of the first entry the file holds (or will hold)
	path    string // file path
	file    vfs.File
	offsets []int64 // offsets[i] is where the record of index base+i starts
	size    int64   // bytes of valid records; appends go here
}

// last is the index of the segment's last entry, base-1 when it holds none.
func (s *segment) last() uint64 { return s.base + uint64(len(s.offsets)) - 1 }

const (
	segmentPrefix = "log-"
	segmentSuffix = ".seg"
)

func segmentName(base uint64) string {
	return fmt.Sprintf("%s%020d%s", segmentPrefix, base, segmentSuffix)
}

// parseSegmentName returns the base index a segment file name carries.
func parseSegmentName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
		return 0, false
	}
	digits := strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix)
	if len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil && base > 0
}

// scanResult is what scanning a segment found: the offsets of its valid records and, when
// it stopped early, why and where.
type scanResult struct {
	offsets []int64
	end     int64  // end of the last valid record
	size    int64  // size of the file
	problem string // "" when every byte was a valid record
	torn    bool   // the problem is an unfinished last record (only meaningful for the newest segment)
}

// scanSegment reads every record of f, checking frame, CRC, decoding and that indexes run
// on from base. It never fails on bad bytes: it reports where they start.
func scanSegment(f vfs.File, base uint64) (scanResult, error) {
	info, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	res := scanResult{size: info.Size()}
	data := make([]byte, res.size)
	if n, err := f.ReadAt(data, 0); err != nil && !(err == io.EOF && int64(n) == res.size) {
		return scanResult{}, err
	}
	var l raft.Log
	for pos := int64(0); pos < res.size; {
		rest := data[pos:]
		if len(rest) < recordHeader {
			res.problem, res.torn = fmt.Sprintf("%d bytes of an unfinished record header at %d", len(rest), pos), true
			return res, nil
		}
		size, sum := frameLength(rest)
		if size == 0 && !slices.ContainsFunc(rest, func(c byte) bool { return c != 0 }) {
			res.problem, res.torn = fmt.Sprintf("zeros from %d to the end", pos), true
			return res, nil
		}
		if size > maxRecordSize || size < payloadFixed {
			res.problem = fmt.Sprintf("record at %d claims %d bytes", pos, size)
			return res, nil
		}
		end := pos + recordHeader + int64(size)
		if end > res.size {
			res.problem, res.torn = fmt.Sprintf("record at %d runs %d bytes past the end", pos, end-res.size), true
			return res, nil
		}
		payload := rest[recordHeader : recordHeader+int(size)]
		if !checkPayload(payload, sum) {
			res.problem = fmt.Sprintf("checksum mismatch in record at %d", pos)
			// The last record of the file failing its CRC is what a crash mid-write leaves
			// when the size reached the disk before the data did.
			res.torn = end == res.size
			return res, nil
		}
		if err := decodePayload(payload, &l); err != nil {
			res.problem = fmt.Sprintf("record at %d: %v", pos, err)
			return res, nil
		}
		if want := base + uint64(len(res.offsets)); l.Index != want {
			res.problem = fmt.Sprintf("record at %d holds index %d, want %d", pos, l.Index, want)
			return res, nil
		}
		res.offsets = append(res.offsets, pos)
		res.end = end
		pos = end
	}
	return res, nil
}

// listSegments returns the bases of the segment files in dir, in order.
func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	entries, err := fs.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var bases []uint64
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name()); ok && !e.IsDir() {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// HasSegments reports whether dir holds any log segment: a node with one has belonged to a
// cluster, whatever state the segments are in.
func HasSegments(fs vfs.FS, dir string) bool {
	bases, err := listSegments(fs, dir)
	return err != nil || len(bases) > 0
}

func segmentPath(dir string, base uint64) string { return filepath.Join(dir, segmentName(base)) }
