package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// Transactions in the log (KIP-98, DESIGN D11). A transactional producer's batches are
// written as they come, and a transaction ends with a marker, a control batch saying
// COMMIT or ABORT, written by the coordinator. The journal tracks, per producer id, the
// first offset of its open transaction: the first unstable offset is the oldest of them,
// and the last stable offset (LSO) that read_committed consumers may read up to is the
// smaller of it and the high watermark, which the caller knows. Each ABORT marker adds an
// entry to its segment's aborted-transaction index, Kafka's .txnindex, which
// read_committed fetches send so that consumers drop the aborted records.
//
// The index lives in memory with the segment's other indexes and is written with them
// (writeIndexes), before the .index, so an .index that recovery adopts vouches for its
// .txnindex too. The open transactions are kept in the producer snapshots. Recovery and
// truncation replay the batches after the newest snapshot that no untrusted index lies
// below (replayTxnsLocked).

// AbortedTxn is one entry of the aborted-transaction index: producer ProducerID's
// transaction from FirstOffset was aborted by the marker at LastOffset, and when the
// marker was written the last stable offset became LastStableOffset.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

// openTxns maps a producer id to the first offset of its open transaction. Guarded by the
// Log's mutex.
type openTxns map[int64]int64

// firstUnstable is the first offset of the oldest open transaction, or end when none is open.
func (t openTxns) firstUnstable(end int64) int64 {
	for _, first := range t {
		end = min(end, first)
	}
	return end
}

func (t openTxns) clone() openTxns {
	c := make(openTxns, len(t))
	for id, first := range t {
		c[id] = first
	}
	return c
}

// noteTxnBatch updates the open transactions for a batch written to seg; batch is the
// batch's bytes, read only for a control batch. An ABORT marker adds an entry to seg's
// aborted-transaction index. Called with the Log's mutex held or during recovery.
func (l *Log) noteTxnBatch(seg *segment, h record.Header, batch []byte) {
	if !h.IsTransactional() || h.ProducerID < 0 {
		return
	}
	if !h.IsControl() {
		if _, ok := l.txns[h.ProducerID]; !ok {
			l.txns[h.ProducerID] = h.BaseOffset
		}
		return
	}
	m, err := record.ParseEndTxnMarker(batch)
	if err != nil {
		return // another kind of control record: it ends nothing
	}
	l.producers.noteMarker(m)
	// A marker with no open transaction (an empty one) is still recorded, as Kafka does.
	first, ok := l.txns[h.ProducerID]
	if !ok {
		first = h.BaseOffset
	}
	delete(l.txns, h.ProducerID)
	if !m.Commit {
		seg.aborted = append(seg.aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset,
			LastStableOffset: l.txns.firstUnstable(h.NextOffset())})
		seg.indexDirty = true
	}
}

// FirstUnstableOffset is the first offset of the oldest open transaction, or the log end
// offset when none is open; never below the log start offset, as in Kafka, when retention
// or DeleteRecords removed the start of an open transaction. The last stable offset is
// the smaller of it and the high watermark.
func (l *Log) FirstUnstableOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return max(l.txns.firstUnstable(l.logEnd), l.logStart)
}

// AbortedTransactions returns the aborted transactions that have records in [from, to),
// oldest marker first: what a read_committed fetch of that range sends so the consumer can
// drop their records.
func (l *Log) AbortedTransactions(from, to int64) []AbortedTxn {
	l.mu.RLock()
	defer l.mu.RUnlock()
	// Markers come after their transactions' records: those of the segments ending at or
	// before from all end transactions before it.
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].next > from })
	var out []AbortedTxn
	for _, s := range l.segments[i:] {
		for _, a := range s.aborted {
			if a.LastOffset >= from && a.FirstOffset < to {
				out = append(out, a)
			}
		}
	}
	return out
}

// replayTxnsLocked rebuilds the open transactions, and the aborted-transaction indexes from
// where it starts, from the newest snapshot at or below limit (the log start when there is
// none) by reading the batches after it. Everything below limit must have trusted indexes.
func (l *Log) replayTxnsLocked(limit int64) {
	open, at := loadTxnSnapshot(l.fs, l.dir, limit)
	if at < l.segments[0].base {
		open, at = openTxns{}, l.segments[0].base
	}
	l.txns = open
	// A segment's index files are rewritten only if the replay changes its entries: those
	// of a closed segment must not be torn by a crash once the recovery point passes it.
	type before struct {
		aborted []AbortedTxn
		dirty   bool
	}
	replayed := map[*segment]before{}
	for _, s := range l.segments {
		if s.next <= at {
			continue
		}
		replayed[s] = before{s.aborted, s.indexDirty}
		n := 0
		for n < len(s.aborted) && s.aborted[n].LastOffset < at {
			n++
		}
		s.aborted = s.aborted[:n:n]
	}
	defer func() {
		for s, b := range replayed {
			s.indexDirty = b.dirty || !slices.Equal(s.aborted, b.aborted)
		}
	}()
	var body []byte
	l.scanBatches(at, func(s *segment, pos int64, h record.Header) {
		if h.IsControl() {
			if cap(body) < h.Size() {
				body = make([]byte, h.Size())
			}
			body = body[:h.Size()]
			if _, err := s.file.ReadAt(body, pos); err != nil {
				return
			}
		}
		l.noteTxnBatch(s, h, body)
	})
}

// The .txnindex file is Kafka's: entries of version int16 (0), producer id, first offset,
// last offset and last stable offset (int64 each), big-endian, nothing else. A segment with
// no aborted transactions has none.
const (
	txnIndexExt     = ".txnindex"
	txnEntrySize    = 34
	txnEntryVersion = 0
)

func encodeTxnIndex(entries []AbortedTxn) []byte {
	b := make([]byte, 0, len(entries)*txnEntrySize)
	for _, a := range entries {
		b = binary.BigEndian.AppendUint16(b, txnEntryVersion)
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
	}
	return b
}

// decodeTxnIndex reads a .txnindex, checking what can be checked without the segment:
// whole entries of version 0, first <= last, last offsets increasing.
func decodeTxnIndex(b []byte) ([]AbortedTxn, error) {
	if len(b)%txnEntrySize != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %d-byte entries", len(b), txnEntrySize)
	}
	out := make([]AbortedTxn, 0, len(b)/txnEntrySize)
	be := binary.BigEndian
	for p := 0; p < len(b); p += txnEntrySize {
		if v := int16(be.Uint16(b[p:])); v != txnEntryVersion {
			return nil, fmt.Errorf("entry %d has version %d", p/txnEntrySize, v)
		}
		a := AbortedTxn{ProducerID: int64(be.Uint64(b[p+2:])), FirstOffset: int64(be.Uint64(b[p+10:])),
			LastOffset: int64(be.Uint64(b[p+18:])), LastStableOffset: int64(be.Uint64(b[p+26:]))}
		if a.FirstOffset < 0 || a.FirstOffset > a.LastOffset || len(out) > 0 && a.LastOffset <= out[len(out)-1].LastOffset {
			return nil, fmt.Errorf("entry %d: offsets [%d, %d] out of order", p/txnEntrySize, a.FirstOffset, a.LastOffset)
		}
		out = append(out, a)
	}
	return out, nil
}

func (s *segment) txnIndexPath(dir string) string {
	return filepath.Join(dir, segmentName(s.base, txnIndexExt))
}

// writeTxnIndex persists the aborted-transaction index and fsyncs it, or removes the file
// when there is nothing in it.
func (s *segment) writeTxnIndex(fs vfs.FS, dir string) error {
	path := s.txnIndexPath(dir)
	if len(s.aborted) == 0 {
		if err := fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", filepath.Base(path), err)
		}
		return nil
	}
	if err := vfs.WriteFileSynced(fs, path, encodeTxnIndex(s.aborted)); err != nil {
		return fmt.Errorf("write index %s: %w", filepath.Base(path), err)
	}
	return nil
}

// loadTxnIndex reads the segment's aborted-transaction index; a missing file is an empty one.
func (s *segment) loadTxnIndex(fs vfs.FS, dir string) error {
	b, err := vfs.ReadFile(fs, s.txnIndexPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		s.aborted = nil
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := decodeTxnIndex(b)
	if err != nil {
		return err
	}
	for _, a := range entries {
		if a.LastOffset < s.base || a.LastOffset >= s.next {
			return fmt.Errorf("marker offset %d outside the segment [%d, %d)", a.LastOffset, s.base, s.next)
		}
	}
	s.aborted = entries
	return nil
}
