package journal

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// producerBatches is how many recent batches per producer are remembered for duplicate
// detection: Kafka's clients keep at most 5 requests in flight with idempotence on.
const producerBatches = 5

type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

type producerEntry struct {
	epoch   int16
	batches []batchMeta // oldest first, at most producerBatches
}

func (e *producerEntry) lastSeq() int32 { return e.batches[len(e.batches)-1].lastSeq }

// ProducerState is the public view of one idempotent producer's state in this log.
type ProducerState struct {
	ProducerID   int64
	Epoch        int16
	LastSequence int32
	LastOffset   int64
}

// producerTable holds idempotent producer state. Guarded by the Log's mutex.
type producerTable map[int64]*producerEntry

// check decides what to do with a batch from an idempotent producer: accept it, report
// it as a duplicate of an earlier batch (returned), or reject it.
func (t producerTable) check(h record.Header) (dup *batchMeta, err error) {
	e, ok := t[h.ProducerID]
	if !ok || len(e.batches) == 0 {
		return nil, nil // unknown producer (or expired state): accept any start, as Kafka >= 2.5
	}
	switch {
	case h.ProducerEpoch < e.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	case h.ProducerEpoch > e.epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	last := h.LastSequence()
	for i := range e.batches {
		if b := &e.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b, nil
		}
	}
	if want := record.IncrementSequence(e.lastSeq(), 1); h.BaseSequence != want {
		return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence, want)
	}
	return nil, nil
}

// update records an appended batch (offsets already assigned).
func (t producerTable) update(h record.Header) {
	if h.ProducerID < 0 || h.BaseSequence < 0 {
		return
	}
	e, ok := t[h.ProducerID]
	if !ok {
		e = &producerEntry{}
		t[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.epoch {
		e.epoch = h.ProducerEpoch
		e.batches = e.batches[:0]
	}
	if len(e.batches) == producerBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:producerBatches-1]
	}
	e.batches = append(e.batches, batchMeta{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
}

// truncateFrom forgets batches at or after offset.
func (t producerTable) truncateFrom(offset int64) {
	for id, e := range t {
		n := 0
		for _, b := range e.batches {
			if b.lastOffset < offset {
				e.batches[n] = b
				n++
			}
		}
		e.batches = e.batches[:n]
		if n == 0 {
			delete(t, id)
		}
	}
}

// Snapshots: <offset>.snapshot holds the table as of that offset (every batch below it).
const snapshotExt = ".snapshot"

// encode writes version 2: the producers, then the open transactions (version 1, from
// before transactions, had no such section).
func (t producerTable) encode(txns openTxns) []byte {
	ids := make([]int64, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := []byte{2}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := t[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(len(e.batches)))
		for _, m := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(m.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.lastOffset))
		}
	}
	ids = ids[:0]
	for id := range txns {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint64(b, uint64(txns[id]))
	}
	return b
}

func decodeProducers(b []byte) (producerTable, openTxns, error) {
	bad := fmt.Errorf("producer snapshot: malformed")
	if len(b) < 5 || b[0] != 1 && b[0] != 2 {
		return nil, nil, bad
	}
	version := b[0]
	be := binary.BigEndian
	n := int(be.Uint32(b[1:]))
	b = b[5:]
	t := producerTable{}
	for i := 0; i < n; i++ {
		if len(b) < 11 {
			return nil, nil, bad
		}
		id, e := int64(be.Uint64(b)), &producerEntry{epoch: int16(be.Uint16(b[8:]))}
		count := int(b[10])
		b = b[11:]
		if count > producerBatches || len(b) < count*24 {
			return nil, nil, bad
		}
		for j := 0; j < count; j++ {
			e.batches = append(e.batches, batchMeta{firstSeq: int32(be.Uint32(b)), lastSeq: int32(be.Uint32(b[4:])),
				firstOffset: int64(be.Uint64(b[8:])), lastOffset: int64(be.Uint64(b[16:]))})
			b = b[24:]
		}
		if count > 0 {
			t[id] = e
		}
	}
	txns := openTxns{}
	if version >= 2 {
		if len(b) < 4 || uint64(len(b)-4) != uint64(be.Uint32(b))*16 {
			return nil, nil, bad
		}
		for b = b[4:]; len(b) > 0; b = b[16:] {
			txns[int64(be.Uint64(b))] = int64(be.Uint64(b[8:]))
		}
	}
	if len(b) != 0 {
		return nil, nil, bad
	}
	return t, txns, nil
}

// snapshotOffsets lists the snapshot files in dir, ascending.
func snapshotOffsets(fs vfs.FS, dir string) []int64 {
	entries, _ := fs.ReadDir(dir)
	var offs []int64
	for _, e := range entries {
		if off, ok := parseSegmentName(e.Name(), snapshotExt); ok {
			offs = append(offs, off)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}

func (t producerTable) save(fs vfs.FS, dir string, offset int64, txns openTxns) error {
	return writeChecked(fs, dir, segmentName(offset, snapshotExt), t.encode(txns))
}

// loadLatestSnapshot returns the newest readable snapshot at or below maxOffset, removing
// snapshots above it (they describe data that no longer exists). offset -1: none.
func loadLatestSnapshot(fs vfs.FS, dir string, maxOffset int64) (producerTable, int64) {
	offs := snapshotOffsets(fs, dir)
	for i := len(offs) - 1; i >= 0; i-- {
		path := filepath.Join(dir, segmentName(offs[i], snapshotExt))
		if offs[i] > maxOffset {
			fs.Remove(path)
			continue
		}
		b, err := readChecked(fs, path)
		if err != nil {
			continue
		}
		if t, _, err := decodeProducers(b); err == nil {
			return t, offs[i]
		}
	}
	return producerTable{}, -1
}

// loadTxnSnapshot returns the open transactions of the newest readable snapshot at or below
// maxOffset, removing nothing. offset -1: none.
func loadTxnSnapshot(fs vfs.FS, dir string, maxOffset int64) (openTxns, int64) {
	offs := snapshotOffsets(fs, dir)
	for i := len(offs) - 1; i >= 0; i-- {
		if offs[i] > maxOffset {
			continue
		}
		b, err := readChecked(fs, filepath.Join(dir, segmentName(offs[i], snapshotExt)))
		if err != nil {
			continue
		}
		if _, txns, err := decodeProducers(b); err == nil {
			return txns, offs[i]
		}
	}
	return nil, -1
}

// pruneSnapshots keeps the newest few snapshots and those at or above minOffset.
func pruneSnapshots(fs vfs.FS, dir string, keep int) {
	offs := snapshotOffsets(fs, dir)
	for i := 0; i < len(offs)-keep; i++ {
		fs.Remove(filepath.Join(dir, segmentName(offs[i], snapshotExt)))
	}
}
