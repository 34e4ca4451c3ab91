package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/strand-data/strand/internal/vfs"
)

// Index files: the .index holds (relOffset uint32, pos uint32) entries and the .timeindex
// holds (maxTsBefore int64, relOffset uint32) entries, Kafka's shapes. Each ends with a
// trailer describing the segment they were built from; an index whose trailer does not
// match the segment (size changed, checksum wrong) is ignored and rebuilt.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
	trailerSize     = 8*6 + 4 // segment size, next offset, max ts, max ts pos, first batch time, created, crc
	castagnoliPoly  = crc32.Castagnoli
)

var crcTable = crc32.MakeTable(castagnoliPoly)

func (s *segment) indexPaths(dir string) (string, string) {
	return filepath.Join(dir, segmentName(s.base, ".index")), filepath.Join(dir, segmentName(s.base, ".timeindex"))
}

// writeIndexes persists the in-memory indexes and fsyncs them (their names become durable
// at the caller's next directory sync). A torn index is detected by its checksum and
// rebuilt, but once a checkpoint's recovery point passes a segment its indexes must be on
// disk, so that verify can call a bad one there damage rather than an unclean stop.
func (s *segment) writeIndexes(fs vfs.FS, dir string) error {
	// The .txnindex goes first: an .index that recovery adopts vouches for it (txn.go).
	if err := s.writeTxnIndex(fs, dir); err != nil {
		return err
	}
	offPath, timePath := s.indexPaths(dir)
	off := make([]byte, 0, len(s.index)*offsetEntrySize+trailerSize)
	tim := make([]byte, 0, len(s.index)*timeEntrySize+trailerSize)
	for _, e := range s.index {
		off = binary.BigEndian.AppendUint32(off, e.relOffset)
		off = binary.BigEndian.AppendUint32(off, e.pos)
		tim = binary.BigEndian.AppendUint64(tim, uint64(e.maxTsBefore))
		tim = binary.BigEndian.AppendUint32(tim, e.relOffset)
	}
	trailer := s.trailer()
	for path, b := range map[string][]byte{offPath: append(off, trailer...), timePath: append(tim, trailer...)} {
		sum := crc32.Checksum(b, crcTable)
		b = binary.BigEndian.AppendUint32(b, sum)
		if err := vfs.WriteFileSynced(fs, path, b); err != nil {
			return fmt.Errorf("write index %s: %w", filepath.Base(path), err)
		}
	}
	s.indexDirty = false
	return nil
}

func (s *segment) trailer() []byte {
	t := make([]byte, 0, trailerSize-4)
	t = binary.BigEndian.AppendUint64(t, uint64(s.size.Load()))
	t = binary.BigEndian.AppendUint64(t, uint64(s.next))
	t = binary.BigEndian.AppendUint64(t, uint64(s.maxTimestamp))
	t = binary.BigEndian.AppendUint64(t, uint64(s.maxTimestampPos))
	t = binary.BigEndian.AppendUint64(t, uint64(s.firstBatchTime))
	t = binary.BigEndian.AppendUint64(t, uint64(s.created))
	return t
}

// loadIndexes reads both index files and adopts them if they are intact and describe the
// segment as it is now. It reports whether they were adopted.
func (s *segment) loadIndexes(fs vfs.FS, dir string) bool {
	offPath, timePath := s.indexPaths(dir)
	off, err1 := readChecked(fs, offPath)
	tim, err2 := readChecked(fs, timePath)
	if err1 != nil || err2 != nil || len(off) < trailerSize-4 || len(tim) < trailerSize-4 {
		return false
	}
	offEntries, timEntries := off[:len(off)-(trailerSize-4)], tim[:len(tim)-(trailerSize-4)]
	trailer := off[len(offEntries):]
	if string(trailer) != string(tim[len(timEntries):]) ||
		len(offEntries)%offsetEntrySize != 0 || len(timEntries)%timeEntrySize != 0 ||
		len(offEntries)/offsetEntrySize != len(timEntries)/timeEntrySize {
		return false
	}
	be := binary.BigEndian
	if int64(be.Uint64(trailer)) != s.size.Load() {
		return false
	}
	n := len(offEntries) / offsetEntrySize
	idx := make([]indexEntry, n)
	for i := range idx {
		o := offEntries[i*offsetEntrySize:]
		t := timEntries[i*timeEntrySize:]
		idx[i] = indexEntry{relOffset: be.Uint32(o), pos: be.Uint32(o[4:]), maxTsBefore: int64(be.Uint64(t))}
		if be.Uint32(t[8:]) != idx[i].relOffset || int64(idx[i].pos) >= s.size.Load() ||
			i > 0 && (idx[i].pos <= idx[i-1].pos || idx[i].relOffset < idx[i-1].relOffset) {
			return false
		}
	}
	s.index = idx
	s.next = int64(be.Uint64(trailer[8:]))
	s.maxTimestamp = int64(be.Uint64(trailer[16:]))
	s.maxTimestampPos = int64(be.Uint64(trailer[24:]))
	s.firstBatchTime = int64(be.Uint64(trailer[32:]))
	s.created = int64(be.Uint64(trailer[40:]))
	s.indexDirty = false
	return s.next >= s.base && s.loadTxnIndex(fs, dir) == nil
}

// readChecked reads a file whose last 4 bytes are the CRC-32C of the rest.
func readChecked(fs vfs.FS, path string) ([]byte, error) {
	b, err := vfs.ReadFile(fs, path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%s: too short", filepath.Base(path))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(body):]) {
		return nil, fmt.Errorf("%s: checksum mismatch", filepath.Base(path))
	}
	return body, nil
}

// writeChecked writes body plus its CRC-32C atomically: temp file, fsync, rename, dir fsync.
func writeChecked(fs vfs.FS, dir, name string, body []byte) error {
	b := binary.BigEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, crcTable))
	if err := vfs.WriteFileDurably(fs, filepath.Join(dir, name), b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncDir makes dir's entries durable.
func syncDir(fs vfs.FS, dir string) error {
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
