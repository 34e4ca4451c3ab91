package journal

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"
	"time"

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
	// coordinatorEpoch is the transaction coordinator epoch of the producer's last marker,
	// -1 before any: a marker from an older coordinator is refused (Kafka's
	// ProducerStateEntry.coordinatorEpoch).
	coordinatorEpoch int32
	// lastTimestamp is the max timestamp of the producer's last batch or marker: the
	// producer expires producer.id.expiration.ms after it (ProducerStateEntry.lastTimestamp).
	lastTimestamp int64
}

func newProducerEntry() *producerEntry {
	return &producerEntry{coordinatorEpoch: -1, lastTimestamp: -1}
}

func (e *producerEntry) lastSeq() int32 { return e.batches[len(e.batches)-1].lastSeq }

// ProducerState is the public view of one idempotent or transactional producer's state
// in this log, what DescribeProducers shows (KIP-664). LastSequence and LastOffset are -1
// for a producer known only from its markers; CoordinatorEpoch -1 before any marker;
// TxnStartOffset -1 with no open transaction.
type ProducerState struct {
	ProducerID       int64
	Epoch            int16
	LastSequence     int32
	LastOffset       int64
	LastTimestamp    int64
	CoordinatorEpoch int32
	TxnStartOffset   int64
}

// producerTable holds idempotent producer state. Guarded by the Log's mutex.
type producerTable map[int64]*producerEntry

// check decides what to do with a batch from an idempotent or transactional producer:
// accept it, report it as a duplicate of an earlier batch (returned), or reject it. An older
// epoch is refused whatever the batch (Kafka's ProducerAppendInfo.checkProducerEpoch: since
// KIP-588 with INVALID_PRODUCER_EPOCH, which lets the client abort and retry, and in every
// Produce version since KAFKA-10687); sequences are
// checked only for batches that carry them and producers with batches remembered.
func (t producerTable) check(h record.Header) (dup *batchMeta, err error) {
	e, ok := t[h.ProducerID]
	if !ok {
		return nil, nil // unknown producer (or expired state): accept any start, as Kafka >= 2.5
	}
	if h.ProducerEpoch < e.epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if h.BaseSequence < 0 || len(e.batches) == 0 {
		return nil, nil
	}
	if h.ProducerEpoch > e.epoch {
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

// checkMarker decides whether a transaction marker of producer m.ProducerID may be written,
// as Kafka's ProducerAppendInfo.appendEndTxnMarker does: not with an epoch older than the
// producer's, nor from a coordinator older than the one that wrote its last marker. Under
// transaction version 2 (KIP-890 part 2) the coordinator bumps the epoch before every
// marker, so one at the producer's epoch is late, unless it repeats a marker that was
// written already (no transaction open): a retry, written again (KAFKA-19999).
func (t producerTable) checkMarker(m record.EndTxnMarker, transactionVersion int8, open openTxns) error {
	e, ok := t[m.ProducerID]
	if !ok {
		return nil
	}
	stale := m.ProducerEpoch < e.epoch
	if transactionVersion >= 2 && m.ProducerEpoch == e.epoch {
		_, ongoing := open[m.ProducerID]
		stale = ongoing
	}
	if stale {
		return fmt.Errorf("%w: marker for producer %d has epoch %d, last seen %d (transaction version %d)", ErrInvalidProducerEpoch, m.ProducerID, m.ProducerEpoch, e.epoch, transactionVersion)
	}
	if m.CoordinatorEpoch < e.coordinatorEpoch {
		return fmt.Errorf("%w: marker for producer %d from coordinator epoch %d, older than %d", ErrTransactionCoordinatorFenced, m.ProducerID, m.CoordinatorEpoch, e.coordinatorEpoch)
	}
	return nil
}

// update records an appended batch (offsets already assigned). A batch without sequences
// (a marker, or transactional offsets the group coordinator writes) moves the epoch and the
// timestamp only; a new epoch forgets the batches of the old one.
func (t producerTable) update(h record.Header) {
	if h.ProducerID < 0 || h.BaseSequence < 0 && !h.IsTransactional() {
		return
	}
	e, ok := t[h.ProducerID]
	if !ok {
		e = newProducerEntry()
		t[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.epoch {
		e.epoch = h.ProducerEpoch
		e.batches = e.batches[:0]
	}
	e.lastTimestamp = h.MaxTimestamp
	if h.BaseSequence < 0 {
		return
	}
	if len(e.batches) == producerBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:producerBatches-1]
	}
	e.batches = append(e.batches, batchMeta{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
}

// noteMarker records the coordinator epoch of a marker appended for its producer (the
// header's update moved the epoch). Markers replay in log order, and a marker from an
// older coordinator is never written, so the largest seen is the last.
func (t producerTable) noteMarker(m record.EndTxnMarker) {
	if e, ok := t[m.ProducerID]; ok {
		e.coordinatorEpoch = max(e.coordinatorEpoch, m.CoordinatorEpoch)
	}
}

// expire forgets the producers that have written nothing for expiration, measured from
// their last batch's timestamp, except those with an open transaction: Kafka's
// ProducerStateManager.removeExpiredProducers with isProducerExpired.
func (t producerTable) expire(nowMs int64, expiration time.Duration, open openTxns) int {
	n := 0
	for id, e := range t {
		if _, ok := open[id]; ok {
			continue
		}
		if e.lastTimestamp < 0 {
			// Loaded from a snapshot older than version 3, which kept no timestamps: the
			// producer's time starts now.
			e.lastTimestamp = nowMs
			continue
		}
		if nowMs-e.lastTimestamp >= expiration.Milliseconds() {
			delete(t, id)
			n++
		}
	}
	return n
}

// Snapshots: <offset>.snapshot holds the table as of that offset (every batch below it).
const snapshotExt = ".snapshot"

// snapshotVersion is what encode writes. Version 1 held the producers' batches; version 2
// added the open transactions; version 3 keeps, for each producer, its coordinator epoch
// and last timestamp, and keeps producers known only from markers (no batches).
const snapshotVersion = 3

// encode writes the producers, then the open transactions.
func (t producerTable) encode(txns openTxns) []byte {
	ids := make([]int64, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := []byte{snapshotVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := t[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(e.coordinatorEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTimestamp))
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

// decodeProducers reads a snapshot of any version; producers from versions before 3 get
// coordinator epoch -1 and an unknown (-1) last timestamp.
func decodeProducers(b []byte) (producerTable, openTxns, error) {
	bad := fmt.Errorf("producer snapshot: malformed")
	if len(b) < 5 || b[0] < 1 || b[0] > snapshotVersion {
		return nil, nil, bad
	}
	version := b[0]
	be := binary.BigEndian
	n := int(be.Uint32(b[1:]))
	b = b[5:]
	t := producerTable{}
	fixed := 11
	if version >= 3 {
		fixed = 23
	}
	for i := 0; i < n; i++ {
		if len(b) < fixed {
			return nil, nil, bad
		}
		id, e := int64(be.Uint64(b)), newProducerEntry()
		e.epoch = int16(be.Uint16(b[8:]))
		if version >= 3 {
			e.coordinatorEpoch, e.lastTimestamp = int32(be.Uint32(b[10:])), int64(be.Uint64(b[14:]))
		}
		count := int(b[fixed-1])
		b = b[fixed:]
		if count > producerBatches || len(b) < count*24 {
			return nil, nil, bad
		}
		for j := 0; j < count; j++ {
			e.batches = append(e.batches, batchMeta{firstSeq: int32(be.Uint32(b)), lastSeq: int32(be.Uint32(b[4:])),
				firstOffset: int64(be.Uint64(b[8:])), lastOffset: int64(be.Uint64(b[16:]))})
			b = b[24:]
		}
		if count > 0 || version >= 3 {
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
