package journal

import (
	"github.com/strand-data/strand/internal/record"
)

// Transactions under compaction, as Kafka's LogCleaner treats them. The cleaner works only
// below the last stable offset, so every transaction it sees has its marker. The records
// of an aborted transaction never count as a key's latest (they would make the key's
// committed value go) and are removed at the first clean; a marker is removed once no batch
// of its transaction is left and it is below the tombstone horizon (delete.retention.ms
// after its first clean), as Kafka's CleanedTransactionMetadata and the tombstone rules
// decide, so that a read_committed consumer never meets records without the marker that
// says how their transaction ended.

// abortedRange is one aborted transaction of a producer: its batches lie in [first, marker).
type abortedRange struct{ first, marker int64 }

// cleanTxns is one pass's view of the transactions in the cleanable section. Batches are
// visited in log order from the log start; a producer's transactions follow one another.
type cleanTxns struct {
	aborted map[int64][]abortedRange // producer → its aborted transactions, by marker offset
	// seen: a batch of the producer's current transaction was met in this pass, so its
	// marker must stay (Kafka's lastObservedBatchOffset and ongoingCommittedTxns).
	seen map[int64]bool
	// droppedAborts are the ABORT markers this pass removes: their .txnindex entries go too.
	droppedAborts map[int64]bool
}

// collectAborted gathers the aborted transactions of the cleanable segments, for a plan.
func collectAborted(segments []cleanSource) cleanTxns {
	t := cleanTxns{aborted: map[int64][]abortedRange{}, seen: map[int64]bool{}, droppedAborts: map[int64]bool{}}
	for _, s := range segments {
		for _, a := range s.seg.aborted {
			t.aborted[a.ProducerID] = append(t.aborted[a.ProducerID], abortedRange{a.FirstOffset, a.LastOffset})
		}
	}
	return t
}

// isAborted reports whether a transactional data batch belongs to an aborted transaction.
func (t *cleanTxns) isAborted(h record.Header) bool {
	if !h.IsTransactional() || h.IsControl() {
		return false
	}
	for _, r := range t.aborted[h.ProducerID] {
		if r.first <= h.BaseOffset && h.BaseOffset < r.marker {
			return true
		}
	}
	return false
}

// onBatch notes a transactional data batch met by the pass.
func (t *cleanTxns) onBatch(h record.Header) {
	if h.IsTransactional() && !h.IsControl() {
		t.seen[h.ProducerID] = true
	}
}

// onMarker notes the marker ending its producer's transaction and reports whether it may go
// once past the horizon: no batch of its transaction was met in this pass.
func (t *cleanTxns) onMarker(h record.Header) bool {
	seen := t.seen[h.ProducerID]
	delete(t.seen, h.ProducerID)
	return !seen
}
