package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// Damage done to a node's files from the outside, as a failing disk or a careless operator
// would: the running process sees a flipped bit through the page cache at its next read, and
// a truncated file at its next start.

// batchHeaderSize is a RecordBatch v2 header's length: everything before the first record.
const batchHeaderSize = 61

// PartitionDir is where a node keeps a partition's segments (DESIGN D3).
func PartitionDir(dataDir, topic string, partition int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// FlipBit flips one bit of the byte at pos in file, writing through the file system (not
// around the page cache) and syncing, so both a running process and the next start see it.
func FlipBit(file string, pos int64) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		return fmt.Errorf("read %s@%d: %w", file, pos, err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, pos); err != nil {
		return fmt.Errorf("write %s@%d: %w", file, pos, err)
	}
	return f.Sync()
}

// RecordsMiddle is the position of the middle byte of a batch's records: inside a record
// (its value, for the workload's small records, or the compressed block holding it), covered
// by the batch CRC, so a flip there is damage only the CRC can find.
func RecordsMiddle(b LocatedBatch) int64 {
	return b.Pos + batchHeaderSize + (b.Size-batchHeaderSize)/2
}

// ClosedBatches are a partition directory's batches that lie in closed segments (all but
// the newest) and end below limit.
func ClosedBatches(dir string, limit int64) ([]LocatedBatch, error) {
	segs, err := Segments(dir)
	if err != nil || len(segs) < 2 {
		return nil, err
	}
	all, err := LocateBatches(dir)
	if err != nil {
		return nil, err
	}
	newest := segs[len(segs)-1]
	var out []LocatedBatch
	for _, b := range all {
		if b.File != newest && b.Last < limit {
			out = append(out, b)
		}
	}
	return out, nil
}

// TruncateNewest cuts the newest non-empty segment of a partition directory to half its
// size (mid-batch, as a lost write-back leaves it) and says what it did.
func TruncateNewest(dir string) (string, error) {
	segs, err := Segments(dir)
	if err != nil {
		return "", err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		fi, err := os.Stat(segs[i])
		if err != nil {
			return "", err
		}
		if fi.Size() < 2*batchHeaderSize {
			continue
		}
		half := fi.Size() / 2
		if err := os.Truncate(segs[i], half); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s cut from %d to %d bytes", filepath.Base(segs[i]), fi.Size(), half), nil
	}
	return "", fmt.Errorf("%s has no segment worth truncating", dir)
}

// BatchesChecksum is the sha256 of the bytes of every batch of a partition directory that
// ends below end, concatenated in offset order, with the number of batches and the offset
// after the last one. Replicas copy the leader's batches verbatim, so equal replicas have
// equal checksums whatever their segment boundaries.
func BatchesChecksum(dir string, end int64) (sum string, batches int, next int64, err error) {
	located, err := LocateBatches(dir)
	if err != nil {
		return "", 0, 0, err
	}
	h := sha256.New()
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, b := range located {
		if b.Last >= end {
			break
		}
		f, ok := files[b.File]
		if !ok {
			if f, err = os.Open(b.File); err != nil {
				return "", 0, 0, err
			}
			files[b.File] = f
		}
		buf := make([]byte, b.Size)
		if _, err := f.ReadAt(buf, b.Pos); err != nil {
			return "", 0, 0, fmt.Errorf("%s@%d: %w", b.File, b.Pos, err)
		}
		h.Write(buf)
		batches++
		next = b.Last + 1
	}
	return hex.EncodeToString(h.Sum(nil)), batches, next, nil
}
