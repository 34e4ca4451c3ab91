package journal

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/strand-data/strand/internal/record"
)

// KIP-890 part 1: before the first batch of a transaction in a partition, the leader asks
// the transaction coordinator whether the partition is in the producer's transaction. The
// answer can be overtaken: the transaction may end (its marker written here) while the
// question is out, and the batch, written after the marker, would open a transaction that
// no marker ever closes. Kafka's VerificationGuard closes that window, and so does this: the
// leader takes a guard before asking, a marker for the producer withdraws it, and the
// append that opens a transaction must present the guard still held.

// VerificationGuard identifies one verification of one producer in one log; zero is none.
type VerificationGuard uint64

// Verification is what an append says of KIP-890 verification: Required when the broker
// verifies transactions (a transaction coordinator answers it), and the guard it holds.
type Verification struct {
	Required bool
	Guard    VerificationGuard
}

type verification struct {
	guard   VerificationGuard
	startMs int64
}

// verifications maps a producer id to its verification under way. Guarded by the Log's
// mutex.
type verifications map[int64]verification

// expire forgets verifications older than expiration, as Kafka expires its
// VerificationStateEntry with the producer state.
func (v verifications) expire(nowMs int64, expiration time.Duration) {
	for id, e := range v {
		if nowMs-e.startMs >= expiration.Milliseconds() {
			delete(v, id)
		}
	}
}

// guardSeq numbers guards, unique in the process.
var guardSeq atomic.Uint64

// StartVerification takes a new guard for producerID before the broker asks the transaction
// coordinator about this partition; the append that follows the coordinator's yes carries
// it. A later StartVerification of the same producer replaces it.
func (l *Log) StartVerification(producerID int64) VerificationGuard {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.verifying == nil {
		l.verifying = verifications{}
	}
	g := VerificationGuard(guardSeq.Add(1))
	l.verifying[producerID] = verification{guard: g, startMs: l.cfg.Now().UnixMilli()}
	return g
}

// checkVerifiedLocked refuses, when verification is required, a transactional batch that
// would open a transaction without the producer's current guard: the transaction it was
// verified for has ended since (Kafka's UnifiedLog batchMissingRequiredVerification,
// answered INVALID_TXN_STATE).
func (l *Log) checkVerifiedLocked(headers []record.Header, v Verification) error {
	if !v.Required {
		return nil
	}
	for _, h := range headers {
		if !h.IsTransactional() || h.IsControl() || h.ProducerID < 0 {
			continue
		}
		if _, open := l.txns[h.ProducerID]; open {
			continue
		}
		if cur, ok := l.verifying[h.ProducerID]; !ok || v.Guard == 0 || cur.guard != v.Guard {
			return fmt.Errorf("%w: producer %d's transaction was not verified for this partition, or ended while it was", ErrInvalidTxnState, h.ProducerID)
		}
	}
	return nil
}
