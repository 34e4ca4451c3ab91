package txn

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fencedFor is the fencing code a request version understands: PRODUCER_FENCED from the
// version that introduced it, INVALID_PRODUCER_EPOCH before (Kafka's KafkaApis does this
// translation for each API).
func fencedFor(code int16, version, firstWithFenced int16) int16 {
	if code == kerr.ProducerFenced.Code && version < firstWithFenced {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// allocationErrorCode is the answer when no producer id could be allocated: the broker's
// own Kafka error when it has one, else COORDINATOR_NOT_AVAILABLE so the client retries.
func allocationErrorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return codeNotAvailable
}

// producerIDAndEpoch is the producer a KIP-360 InitProducerId (v3+) says it is.
type producerIDAndEpoch struct {
	id    int64
	epoch int16
}

// initProducerID answers InitProducerId, Kafka's TransactionCoordinator.handleInitProducerId.
func (c *Coordinator) initProducerID(r *kmsg.InitProducerIDRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	answer := func(code int16, pid int64, epoch int16) kmsg.Response {
		resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = fencedFor(code, r.Version, 4)
		resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
		if code == 0 {
			resp.ProducerID, resp.ProducerEpoch = pid, epoch
		}
		return resp
	}
	notAvailable := func() kmsg.Response { return answer(codeNotAvailable, 0, 0) }
	if r.TransactionalID == nil {
		// No transactional id: a fresh producer id at epoch 0, as Kafka's coordinator
		// answers (the broker normally handles idempotent producers itself).
		return c.async(func(ctx context.Context) kmsg.Response {
			pid, err := c.env.AllocateProducerID(ctx)
			if err != nil {
				return answer(allocationErrorCode(err), 0, 0)
			}
			return answer(0, pid, 0)
		}, notAvailable)
	}
	id := *r.TransactionalID
	if id == "" {
		return answer(kerr.InvalidRequest.Code, 0, 0), nil
	}
	if r.TransactionTimeoutMillis <= 0 || int64(r.TransactionTimeoutMillis) > c.cfg.MaxTimeout.Milliseconds() {
		return answer(kerr.InvalidTransactionTimeout.Code, 0, 0), nil
	}
	var expected *producerIDAndEpoch
	if r.Version >= 3 {
		switch {
		case r.ProducerID == noProducerID && r.ProducerEpoch == noProducerEpoch:
		case r.ProducerID == noProducerID || r.ProducerEpoch == noProducerEpoch:
			return answer(kerr.InvalidRequest.Code, 0, 0), nil
		default:
			expected = &producerIDAndEpoch{r.ProducerID, r.ProducerEpoch}
		}
	}
	c.mu.Lock()
	_, code := c.ownerLocked(id)
	c.mu.Unlock()
	if code != 0 {
		return answer(code, 0, 0), nil
	}
	return c.async(func(ctx context.Context) kmsg.Response {
		code, pid, epoch := c.initTransactional(ctx, id, r.TransactionTimeoutMillis, expected)
		return answer(code, pid, epoch)
	}, notAvailable)
}

// initTransactional is handleInitProducerId for a transactional id. A new id gets a
// producer id at epoch 0; a known one gets its epoch bumped, which fences the previous
// producer, or a new producer id once the epoch is exhausted. An ongoing transaction is
// aborted first with a bumped epoch and the client gets CONCURRENT_TRANSACTIONS, retrying
// until the abort is complete; then its retry bumps the epoch again.
func (c *Coordinator) initTransactional(ctx context.Context, id string, timeoutMs int32, expected *producerIDAndEpoch) (int16, int64, int16) {
	spare := noProducerID // a producer id allocated for this request, not yet used
	for {
		c.mu.Lock()
		p, code := c.ownerLocked(id)
		if code != 0 {
			c.mu.Unlock()
			return code, 0, 0
		}
		m := c.txns[id]
		if m == nil || (m.pending == nil && m.state.expirable() && needsRotation(m, expected)) {
			if spare == noProducerID {
				c.mu.Unlock()
				pid, err := c.env.AllocateProducerID(ctx)
				if err != nil {
					return allocationErrorCode(err), 0, 0
				}
				spare = pid
				continue // the table may have changed meanwhile: decide again
			}
		}
		created := m == nil
		if created {
			// Kafka's putTransactionStateIfNotExists: the id is known in memory, at no
			// epoch, while its first state is written.
			m = &txnMeta{id: id, partition: p.id, txnState: txnState{producerID: spare, previousProducerID: noProducerID,
				epoch: noProducerEpoch, lastEpoch: noProducerEpoch, timeoutMs: timeoutMs, state: stateEmpty,
				partitions: map[TopicPartition]struct{}{}, startMs: -1, updateMs: c.cfg.Now().UnixMilli()}}
			c.txns[id] = m
			spare = noProducerID
		}
		c.mu.Unlock()

		code, next, m, p := c.transition(ctx, id, func(p *ownedPartition, m *txnMeta) (txnState, int16, bool) {
			return c.prepareInit(m, timeoutMs, expected, &spare)
		})
		if code == errRetryInit {
			continue
		}
		if code != 0 {
			if created {
				c.forgetUnwritten(id)
			}
			return code, 0, 0
		}
		if next.state == statePrepareAbort {
			// The ongoing transaction is being aborted on the producer's behalf.
			c.startCompletion(p, m)
			return kerr.ConcurrentTransactions.Code, 0, 0
		}
		return 0, next.producerID, next.epoch
	}
}

// forgetUnwritten drops an id whose first state could not be written, so that a failed
// write leaves the table as it was. (Kafka keeps such an id in its cache at no epoch; it
// is not in the log, so a reload would forget it anyway.)
func (c *Coordinator) forgetUnwritten(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.txns[id]; m != nil && m.epoch == noProducerEpoch && m.pending == nil {
		delete(c.txns, id)
	}
}

// errRetryInit is an internal answer of prepareInit: a producer id must be allocated first.
const errRetryInit int16 = -2

// needsRotation: the epoch is exhausted and the request does not claim an older epoch, so
// the producer gets a new producer id at epoch 0 (KIP-360).
func needsRotation(m *txnMeta, expected *producerIDAndEpoch) bool {
	return epochExhausted(m.epoch) && (expected == nil || expected.epoch == m.epoch)
}

// prepareInit is Kafka's prepareInitProducerIdTransit, under c.mu.
func (c *Coordinator) prepareInit(m *txnMeta, timeoutMs int32, expected *producerIDAndEpoch, spare *int64) (txnState, int16, bool) {
	if m == nil {
		return txnState{}, errRetryInit, false
	}
	now := c.cfg.Now().UnixMilli()
	if m.pending != nil {
		return txnState{}, kerr.ConcurrentTransactions.Code, false
	}
	// KIP-360: the producer named in the request must be the current one (or, right after
	// a rotation, the previous one at its exhausted epoch); anyone else is a zombie.
	if expected != nil && !(m.epoch == noProducerEpoch || expected.id == m.producerID ||
		(expected.id == m.previousProducerID && epochExhausted(expected.epoch))) {
		return txnState{}, kerr.ProducerFenced.Code, false
	}
	switch m.state {
	case statePrepareCommit, statePrepareAbort:
		return txnState{}, kerr.ConcurrentTransactions.Code, false
	case stateOngoing:
		next, ok := fenceAbort(m, now)
		if !ok {
			return txnState{}, kerr.UnknownServerError.Code, false
		}
		return next, 0, true
	case stateEmpty, stateCompleteCommit, stateCompleteAbort:
		next := m.clone()
		next.state = stateEmpty
		next.partitions = map[TopicPartition]struct{}{}
		next.startMs = -1
		next.updateMs = now
		next.timeoutMs = timeoutMs
		if needsRotation(m, expected) {
			if *spare == noProducerID {
				return txnState{}, errRetryInit, false
			}
			// Kafka's prepareProducerIdRotation.
			next.previousProducerID = m.producerID
			next.producerID, next.epoch = *spare, 0
			next.lastEpoch = noProducerEpoch
			if expected != nil {
				next.lastEpoch = m.epoch
			}
			*spare = noProducerID
			return next, 0, true
		}
		// Kafka's prepareIncrementProducerEpoch.
		switch {
		case expected == nil:
			next.epoch, next.lastEpoch = m.epoch+1, noProducerEpoch
		case m.epoch == noProducerEpoch || expected.epoch == m.epoch:
			next.epoch, next.lastEpoch = m.epoch+1, m.epoch
		case expected.epoch == m.lastEpoch:
			// A retry of a bump whose answer was lost: the same epoch again.
			next.epoch, next.lastEpoch = m.epoch, m.lastEpoch
		default:
			return txnState{}, kerr.ProducerFenced.Code, false
		}
		return next, 0, true
	}
	// Dead or PrepareEpochFence are never installed states here.
	return txnState{}, kerr.ConcurrentTransactions.Code, false
}

// fenceAbort is the state that aborts m's ongoing transaction on the coordinator's own
// initiative (a new producer with the same id, or the timeout): PrepareAbort at the next
// epoch, so the markers and the answer fence the producer that began it. This is Kafka's
// prepareFenceProducerEpoch followed by endTransaction(ABORT, isFromClient = false),
// written as one record as Kafka writes it. It fails only at the last epoch.
func fenceAbort(m *txnMeta, nowMs int64) (txnState, bool) {
	if m.epoch == 1<<15-1 {
		return txnState{}, false
	}
	next := m.clone()
	next.epoch = m.epoch + 1
	next.lastEpoch = noProducerEpoch
	next.state = statePrepareAbort
	next.updateMs = nowMs
	return next, true
}

// checkProducer is the common check of AddPartitionsToTxn, AddOffsetsToTxn and
// verification: the id's producer id and epoch must be the current ones.
func checkProducer(m *txnMeta, pid int64, epoch int16) int16 {
	switch {
	case m == nil || m.producerID != pid:
		return kerr.InvalidProducerIDMapping.Code
	case m.epoch != epoch:
		return kerr.ProducerFenced.Code
	}
	return 0
}

// addPartitionsDecision is Kafka's handleAddPartitionsToTransaction check and
// prepareAddPartitions, under c.mu.
func (c *Coordinator) addPartitionsDecision(pid int64, epoch int16, add []TopicPartition) decideFunc {
	return func(p *ownedPartition, m *txnMeta) (txnState, int16, bool) {
		if code := checkProducer(m, pid, epoch); code != 0 {
			return txnState{}, code, false
		}
		if m.pending != nil || m.state.prepared() {
			return txnState{}, kerr.ConcurrentTransactions.Code, false
		}
		if m.state == stateOngoing {
			missing := false
			for _, tp := range add {
				if _, ok := m.partitions[tp]; !ok {
					missing = true
					break
				}
			}
			if !missing {
				return txnState{}, 0, false // all there already: nothing to write
			}
		}
		next := m.clone()
		if m.state != stateOngoing {
			next.startMs = c.cfg.Now().UnixMilli() // a transaction begins
		}
		next.state = stateOngoing
		next.updateMs = c.cfg.Now().UnixMilli()
		for _, tp := range add {
			next.partitions[tp] = struct{}{}
		}
		return next, 0, true
	}
}

// addOffsets answers AddOffsetsToTxn: the group's __consumer_offsets partition joins the
// transaction, so that the TxnOffsetCommit written there is committed or aborted with it
// (Kafka's KafkaApis.handleAddOffsetsToTxnRequest).
func (c *Coordinator) addOffsets(r *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	answer := func(code int16) kmsg.Response {
		resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = fencedFor(code, r.Version, 2)
		return resp
	}
	if r.TransactionalID == "" {
		return answer(kerr.InvalidRequest.Code), nil
	}
	tp := TopicPartition{"__consumer_offsets", c.env.OffsetsPartition(r.Group)}
	decide := c.addPartitionsDecision(r.ProducerID, r.ProducerEpoch, []TopicPartition{tp})
	return c.async(func(ctx context.Context) kmsg.Response {
		code, _, _, _ := c.transition(ctx, r.TransactionalID, decide)
		return answer(code)
	}, func() kmsg.Response { return answer(codeNotAvailable) })
}

// endTxn answers EndTxn, Kafka's TransactionCoordinator.endTransaction from a client
// (transaction version 1: no epoch bump per transaction). Once PrepareCommit or
// PrepareAbort is written the client is answered, and the markers and the Complete state
// follow in the background.
func (c *Coordinator) endTxn(r *kmsg.EndTxnRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	answer := func(code int16, pid int64, epoch int16) kmsg.Response {
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = fencedFor(code, r.Version, 2)
		resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
		if code == 0 {
			resp.ProducerID, resp.ProducerEpoch = pid, epoch
		}
		return resp
	}
	if r.TransactionalID == "" {
		return answer(kerr.InvalidRequest.Code, 0, 0), nil
	}
	var current txnState // the state a no-write answer reports
	decide := func(p *ownedPartition, m *txnMeta) (txnState, int16, bool) {
		if m == nil || m.producerID != r.ProducerID {
			return txnState{}, kerr.InvalidProducerIDMapping.Code, false
		}
		if m.epoch != r.ProducerEpoch {
			return txnState{}, kerr.ProducerFenced.Code, false
		}
		if m.pending != nil {
			return txnState{}, kerr.ConcurrentTransactions.Code, false
		}
		current = m.txnState
		switch {
		case m.state == stateOngoing:
			next := m.clone()
			next.state = statePrepareAbort
			if r.Commit {
				next.state = statePrepareCommit
			}
			next.updateMs = c.cfg.Now().UnixMilli()
			return next, 0, true
		case m.state == stateCompleteCommit && r.Commit, m.state == stateCompleteAbort && !r.Commit:
			return txnState{}, 0, false // a retry of an EndTxn that completed
		case m.state == statePrepareCommit && r.Commit, m.state == statePrepareAbort && !r.Commit:
			return txnState{}, kerr.ConcurrentTransactions.Code, false // a retry while markers are written
		}
		return txnState{}, kerr.InvalidTxnState.Code, false
	}
	return c.async(func(ctx context.Context) kmsg.Response {
		code, next, m, p := c.transition(ctx, r.TransactionalID, decide)
		if code != 0 {
			return answer(code, 0, 0)
		}
		if m == nil || !next.state.prepared() {
			return answer(0, current.producerID, current.epoch)
		}
		c.startCompletion(p, m)
		return answer(0, next.producerID, next.epoch)
	}, func() kmsg.Response { return answer(codeNotAvailable, 0, 0) })
}
