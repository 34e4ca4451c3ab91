package journal

import (
	"context"
	"sort"

	"github.com/strand-data/strand/internal/record"
)

// AppendMarker writes the marker that ends producer m.ProducerID's transaction in this log,
// as the leader does when the transaction coordinator sends WriteTxnMarkers, and returns
// without waiting for durability. It is refused, with nothing stored changed, for an epoch
// older than the producer's (ErrInvalidProducerEpoch) or a coordinator epoch older than
// that of the producer's last marker (ErrTransactionCoordinatorFenced), as Kafka's
// ProducerAppendInfo.appendEndTxnMarker refuses it. A marker for a producer with no open
// transaction here is written all the same, as Kafka writes it: the coordinator sends
// markers to every partition of the transaction, and one may have received no data.
// transactionVersion is WriteTxnMarkers' (v2+): from 2 on, the marker's epoch must be
// above the producer's (producerTable.checkMarker).
func (l *Log) AppendMarker(m record.EndTxnMarker, transactionVersion int8, opts AppendOptions) (AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendResult{}, err
	}
	if err := l.producers.checkMarker(m, transactionVersion, l.txns); err != nil {
		return AppendResult{}, err
	}
	now := l.cfg.Now().UnixMilli()
	batch := record.BuildEndTxnMarker(m, now, opts.LeaderEpoch)
	h, err := record.ParseHeader(batch)
	if err != nil {
		return AppendResult{}, err
	}
	record.SetBaseOffset(batch, l.logEnd)
	h.BaseOffset = l.logEnd
	if err := l.writeLocked(batch, []record.Header{h}, now); err != nil {
		return AppendResult{}, err
	}
	// A verification begun before the transaction ended is for the ended one: a produce
	// that carries it must not open a new transaction (Kafka clears the producer's
	// VerificationStateEntry with the marker).
	delete(l.verifying, m.ProducerID)
	l.kickSync()
	return AppendResult{BaseOffset: h.BaseOffset, LastOffset: h.BaseOffset, LogAppendTime: now, LogStartOffset: l.logStart, Records: 1}, nil
}

// WaitMarker is AppendMarker followed by WaitDurable.
func (l *Log) WaitMarker(ctx context.Context, m record.EndTxnMarker, transactionVersion int8, opts AppendOptions) (AppendResult, error) {
	res, err := l.AppendMarker(m, transactionVersion, opts)
	if err != nil {
		return res, err
	}
	return res, l.WaitDurable(ctx, res.LastOffset+1)
}

// HasOpenTransaction reports whether producerID has a transaction open in this log: its
// transactional batches are written and no marker has ended them yet.
func (l *Log) HasOpenTransaction(producerID int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.txns[producerID]
	return ok
}

// Producer returns one producer's state in this log.
func (l *Log) Producer(id int64) (ProducerState, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.producers[id]
	if !ok {
		return ProducerState{}, false
	}
	return l.producerStateLocked(id, e), true
}

// Producers lists the producers this log knows, by id: what DescribeProducers answers.
func (l *Log) Producers() []ProducerState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]ProducerState, 0, len(l.producers))
	for id, e := range l.producers {
		out = append(out, l.producerStateLocked(id, e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

func (l *Log) producerStateLocked(id int64, e *producerEntry) ProducerState {
	s := ProducerState{ProducerID: id, Epoch: e.epoch, LastSequence: -1, LastOffset: -1, LastTimestamp: e.lastTimestamp,
		CoordinatorEpoch: e.coordinatorEpoch, TxnStartOffset: -1}
	if len(e.batches) > 0 {
		last := e.batches[len(e.batches)-1]
		s.LastSequence, s.LastOffset = last.lastSeq, last.lastOffset
	}
	if first, ok := l.txns[id]; ok {
		s.TxnStartOffset = first
	}
	return s
}

// ExpireProducers forgets the producers idle for longer than producer.id.expiration.ms
// (Config.ProducerIDExpiration), never one with an open transaction, and returns how many
// it forgot. The broker calls it every producer.id.expiration.check.interval.ms, as Kafka's
// UnifiedLog schedules removeExpiredProducers. Idleness is measured, as in Kafka, from the
// max timestamp of the producer's last batch.
func (l *Log) ExpireProducers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now().UnixMilli()
	l.verifying.expire(now, l.cfg.ProducerIDExpiration)
	return l.producers.expire(now, l.cfg.ProducerIDExpiration, l.txns)
}
