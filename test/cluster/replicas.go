package cluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Replica divergence is checked on disk, from the outside: DESIGN D3 fixes a partition's
// directory as `<topic>-<partition>` holding `<20-digit base offset>.log` segments of Kafka
// RecordBatch v2 bytes as received, and followers copy the leader's batches verbatim. So
// every replica's batches below the high watermark must be the same batches: same base
// offset, same last offset, same CRC (which covers everything but the base offset and the
// leader epoch field).

// Batch is one record batch's identity in a replica's log.
type Batch struct {
	Base, Last int64
	CRC        uint32
}

// ReadBatches lists the batches of a partition directory's segments in offset order,
// stopping at a torn tail.
func ReadBatches(dir string) ([]Batch, error) {
	located, err := LocateBatches(dir)
	out := make([]Batch, len(located))
	for i, b := range located {
		out[i] = b.Batch
	}
	return out, err
}

// LocatedBatch is a batch and where its bytes are: Size bytes at Pos of segment File.
type LocatedBatch struct {
	Batch
	File      string
	Pos, Size int64
}

// Segments lists a partition directory's segment files in offset order.
func Segments(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // 20-digit zero-padded base offsets sort as numbers
	out := names[:0]
	for _, name := range names {
		if _, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(name), ".log"), 10, 64); err == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

// LocateBatches is ReadBatches with each batch's file and position.
func LocateBatches(dir string) ([]LocatedBatch, error) {
	names, err := Segments(dir)
	if err != nil {
		return nil, err
	}
	var out []LocatedBatch
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		bs, err := readSegment(f, name)
		f.Close()
		out = append(out, bs...)
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

func readSegment(r io.Reader, name string) ([]LocatedBatch, error) {
	var out []LocatedBatch
	head := make([]byte, 27) // baseOffset 8, length 4, leader epoch 4, magic 1, crc 4, attributes 2, lastOffsetDelta 4
	var pos int64
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return out, nil // end, or a torn tail
		}
		length := int64(int32(binary.BigEndian.Uint32(head[8:12])))
		if length < 15 || head[16] != 2 {
			return out, fmt.Errorf("batch at offset %d: length %d, magic %d", int64(binary.BigEndian.Uint64(head[0:8])), length, head[16])
		}
		b := LocatedBatch{Batch: Batch{Base: int64(binary.BigEndian.Uint64(head[0:8])), CRC: binary.BigEndian.Uint32(head[17:21])},
			File: name, Pos: pos, Size: 12 + length}
		b.Last = b.Base + int64(int32(binary.BigEndian.Uint32(head[23:27])))
		if _, err := io.CopyN(io.Discard, r, length-15); err != nil {
			return out, nil // torn tail
		}
		out = append(out, b)
		pos += b.Size
	}
}

// Divergence compares, for each partition, the batches below end[partition] in every
// replica's directory (dirs maps a node id to its data dir); replicas may be behind, but
// where two hold a batch at the same position it must be the same batch. compared counts
// the batch pairs compared, so a caller can tell a clean result from an empty one.
func Divergence(dirs map[int32]string, topic string, ends map[int32]int64) (out []Anomaly, compared int, err error) {
	nodes := make([]int32, 0, len(dirs))
	for id := range dirs {
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	for p, end := range ends {
		replicas := map[int32][]Batch{}
		for _, id := range nodes {
			dir := filepath.Join(dirs[id], fmt.Sprintf("%s-%d", topic, p))
			if _, err := os.Stat(dir); err != nil {
				continue // not a replica of this partition
			}
			bs, err := ReadBatches(dir)
			if err != nil {
				return nil, compared, fmt.Errorf("node %d: %w", id, err)
			}
			i := 0
			for i < len(bs) && bs[i].Last < end {
				i++
			}
			replicas[id] = bs[:i]
		}
		var ref int32 = -1
		for _, id := range nodes {
			bs, ok := replicas[id]
			if !ok {
				continue
			}
			if ref < 0 {
				ref = id
				continue
			}
			a := replicas[ref]
			for i := 0; i < min(len(a), len(bs)); i++ {
				compared++
				if a[i] != bs[i] {
					out = append(out, Anomaly{p, min(a[i].Base, bs[i].Base), fmt.Sprintf("node %d has batch %d-%d crc %08x, node %d has %d-%d crc %08x",
						ref, a[i].Base, a[i].Last, a[i].CRC, id, bs[i].Base, bs[i].Last, bs[i].CRC)})
					break
				}
			}
		}
	}
	sortAnomalies(out)
	return out, compared, nil
}
