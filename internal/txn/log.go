package txn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

var (
	codeNotCoordinator = kerr.NotCoordinator.Code
	codeLoadInProgress = kerr.CoordinatorLoadInProgress.Code
	codeNotAvailable   = kerr.CoordinatorNotAvailable.Code
)

// stateRecord is one record of __transaction_state; a nil value is a tombstone.
type stateRecord struct{ key, value []byte }

// encodeBatch builds one uncompressed batch of records (Kafka enforces no compression on
// __transaction_state, TransactionLog.EnforcedCompression).
func encodeBatch(records []stateRecord, now time.Time) ([]byte, error) {
	recs := make([]record.Record, len(records))
	for i, r := range records {
		recs[i] = record.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
	}
	return record.Build(record.Header{BaseTimestamp: now.UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
}

// appendErrorCode maps a failed append to the code the coordinator answers, as Kafka's
// TransactionStateManager.appendTransactionToLog does: the ISR being short or the write
// timing out is COORDINATOR_NOT_AVAILABLE (the client retries here), leadership lost or a
// broken disk is NOT_COORDINATOR (the client looks the coordinator up again), a batch too
// large is UNKNOWN_SERVER_ERROR. An error that is not a Kafka error (the adapter's own)
// counts as COORDINATOR_NOT_AVAILABLE so that the client retries.
func appendErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return codeNotAvailable
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return codeNotAvailable
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return codeNotCoordinator
	case kerr.MessageTooLarge, kerr.RecordListTooLarge:
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}

// appendTimeout bounds one state write; Kafka gives the append the transaction's timeout.
func appendTimeout(timeoutMs int32) time.Duration {
	if timeoutMs <= 0 {
		return 30 * time.Second
	}
	return time.Duration(timeoutMs) * time.Millisecond
}

// decideFunc computes, under c.mu, the next state of a transactional id (m is nil when the
// id is unknown here) or the code to answer instead: write=false answers code with no write.
type decideFunc func(p *ownedPartition, m *txnMeta) (next txnState, code int16, write bool)

// transition is one state change as Kafka makes it: decide checks and computes the next
// state and marks it pending (prepareTransitionTo), the state is appended to the id's
// partition (appendTransactionToLog), and only once that write is committed does it
// become m's state (completeTransitionTo). A failed write leaves m as it was and answers
// the mapped code; a write that succeeds after the partition moved answers NOT_COORDINATOR.
// It returns the code and, on success, the installed state and m.
func (c *Coordinator) transition(ctx context.Context, id string, decide decideFunc) (int16, txnState, *txnMeta, *ownedPartition) {
	c.mu.Lock()
	p, code := c.ownerLocked(id)
	if code != 0 {
		c.mu.Unlock()
		return code, txnState{}, nil, nil
	}
	m := c.txns[id]
	next, code, write := decide(p, m)
	if !write || code != 0 {
		c.mu.Unlock()
		return code, txnState{}, m, p
	}
	if m.pending != nil {
		c.mu.Unlock()
		return kerr.ConcurrentTransactions.Code, txnState{}, m, p
	}
	m.pending = &next
	c.mu.Unlock()
	return c.persist(ctx, p, m, next), next, m, p
}

// persist appends m's pending state next and installs it; see transition.
func (c *Coordinator) persist(ctx context.Context, p *ownedPartition, m *txnMeta, next txnState) int16 {
	batch, err := encodeBatch([]stateRecord{{stateKey(m.id), stateValue(next)}}, c.cfg.Now())
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, appendTimeout(next.timeoutMs))
		_, err = p.log.Append(actx, batch)
		cancel()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	current := c.owned[p.id] == p && c.txns[m.id] == m
	if err != nil {
		if current {
			m.pending = nil
		}
		c.cfg.Logger.Info("writing transaction state failed; state unchanged", "transactional_id", m.id, "state", next.state.String(), "err", err)
		return appendErrorCode(err)
	}
	if !current {
		return codeNotCoordinator
	}
	m.txnState = next
	m.pending = nil
	return 0
}

// replay reads a partition from its start into a fresh table, as Kafka's
// loadTransactionMetadata does: the last value of each transactional id wins and a
// tombstone removes it. Records whose key version is unknown are skipped (a newer Kafka may
// write kinds we do not know), as Kafka skips them; a value that does not decode is logged
// and skipped, keeping the id's previous state.
func (c *Coordinator) replay(ctx context.Context, partition int32, log Log) (map[string]*txnMeta, error) {
	table := map[string]*txnMeta{}
	offset := log.LogStartOffset()
	end := log.LogEndOffset()
	for offset < end {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("replay %s-%d: %w", StateTopic, partition, err)
		}
		b, err := log.ReadBytes(offset, 4<<20)
		if err != nil {
			return nil, fmt.Errorf("replay %s-%d at %d: %w", StateTopic, partition, offset, err)
		}
		if len(b) == 0 {
			break
		}
		batches, err := record.Split(b)
		if err != nil {
			return nil, fmt.Errorf("replay %s-%d at %d: %w", StateTopic, partition, offset, err)
		}
		if len(batches) == 0 {
			break
		}
		for _, batch := range batches {
			h, err := record.ParseHeader(batch)
			if err != nil {
				return nil, fmt.Errorf("replay %s-%d at %d: %w", StateTopic, partition, offset, err)
			}
			if h.NextOffset() <= offset && h.BaseOffset < offset {
				continue // a batch before offset, returned because reads start at batch boundaries
			}
			offset = h.NextOffset()
			if h.IsControl() {
				continue
			}
			recs, err := record.Records(batch)
			if err != nil {
				return nil, fmt.Errorf("replay %s-%d batch %d: %w", StateTopic, partition, h.BaseOffset, err)
			}
			for _, r := range recs {
				c.applyRecord(table, partition, r.Key, r.Value)
			}
		}
	}
	return table, nil
}

// applyRecord applies one __transaction_state record to a table being loaded.
func (c *Coordinator) applyRecord(table map[string]*txnMeta, partition int32, key, value []byte) {
	if len(key) < 2 || binary.BigEndian.Uint16(key) != 0 {
		c.cfg.Logger.Warn("skipping a transaction state record with an unknown key version", "partition", partition)
		return
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		c.cfg.Logger.Error("skipping an unreadable transaction state key", "partition", partition, "err", err)
		return
	}
	if value == nil {
		delete(table, k.TransactionalID)
		return
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil || v.Version < 0 || v.Version > 1 {
		c.cfg.Logger.Error("skipping an unreadable transaction state value", "partition", partition, "transactional_id", k.TransactionalID, "err", err)
		return
	}
	s := stateFromValue(&v)
	if s.state < stateEmpty || s.state > statePrepareEpochFence {
		c.cfg.Logger.Error("skipping a transaction state with an unknown status", "partition", partition, "transactional_id", k.TransactionalID, "status", int8(s.state))
		return
	}
	table[k.TransactionalID] = &txnMeta{id: k.TransactionalID, partition: partition, txnState: s}
}
