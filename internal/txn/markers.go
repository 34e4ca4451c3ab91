package txn

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

const (
	markerBackoffMin = 20 * time.Millisecond
	markerBackoffMax = time.Second
)

// startCompletion sends the markers of m's prepared transaction and then writes its
// Complete state, in the background, unless that is already under way. It is Kafka's
// TransactionMarkerChannelManager.addTxnMarkersToSend. It takes c.mu.
func (c *Coordinator) startCompletion(p *ownedPartition, m *txnMeta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owned[p.id] == p && c.txns[m.id] == m && m.state.prepared() {
		c.completeLocked(p, m)
	}
}

func (c *Coordinator) completeLocked(p *ownedPartition, m *txnMeta) {
	if m.completing {
		return
	}
	marker := Marker{TransactionalID: m.id, ProducerID: m.producerID, ProducerEpoch: m.epoch,
		CoordinatorEpoch: p.epoch, Commit: m.state == statePrepareCommit, Partitions: m.sortedPartitions()}
	m.completing = true
	if !c.goLocked(func() { c.complete(p, m, marker) }) {
		m.completing = false
	}
}

// complete delivers marker to every partition and then writes the Complete state. Like
// Kafka's marker channel it retries what failed with backoff until it is written: a
// transaction whose marker is missing holds its partitions' last stable offset back. A
// partition that no longer exists is dropped (its data went with it). A fenced answer
// (the producer epoch or the coordinator epoch moved on) stops it: a newer coordinator or
// transaction owns those partitions now (TransactionMarkerRequestCompletionHandler).
func (c *Coordinator) complete(p *ownedPartition, m *txnMeta, marker Marker) {
	defer func() {
		c.mu.Lock()
		m.completing = false
		c.mu.Unlock()
	}()
	log := c.cfg.Logger.With("transactional_id", marker.TransactionalID, "producer_id", marker.ProducerID, "producer_epoch", marker.ProducerEpoch, "commit", marker.Commit)
	backoff := markerBackoffMin
	pause := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, markerBackoffMax)
		select {
		case <-p.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	pending := marker.Partitions
	for len(pending) > 0 {
		if p.ctx.Err() != nil {
			return
		}
		var send []TopicPartition
		for _, tp := range pending {
			if c.env.PartitionExists(tp.Topic, tp.Partition) {
				send = append(send, tp)
			} else {
				log.Info("dropping the marker of a partition that no longer exists", "topic", tp.Topic, "partition", tp.Partition)
			}
		}
		if len(send) == 0 {
			break
		}
		req := marker
		req.Partitions = send
		errs := c.markers.WriteMarkers(p.ctx, req)
		var retry []TopicPartition
		for _, tp := range send {
			err, answered := errs[tp]
			switch {
			case answered && err == nil:
			case errors.Is(err, kerr.UnknownTopicOrPartition):
				log.Info("dropping the marker of a partition that no longer exists", "topic", tp.Topic, "partition", tp.Partition)
			case errors.Is(err, kerr.InvalidProducerEpoch), errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.TransactionCoordinatorFenced):
				log.Info("stopping the markers of a fenced transaction", "topic", tp.Topic, "partition", tp.Partition, "err", err)
				return
			default:
				if err != nil && !kerr.IsRetriable(err) {
					log.Warn("writing a transaction marker failed; retrying", "topic", tp.Topic, "partition", tp.Partition, "err", err)
				}
				retry = append(retry, tp)
			}
		}
		pending = retry
		if len(pending) > 0 && !pause() {
			return
		}
	}

	for {
		code, _, _, _ := c.transition(p.ctx, marker.TransactionalID, func(_ *ownedPartition, cur *txnMeta) (txnState, int16, bool) {
			if cur != m || cur.producerID != marker.ProducerID || cur.epoch != marker.ProducerEpoch || !cur.state.prepared() {
				return txnState{}, kerr.InvalidTxnState.Code, false
			}
			// Kafka's prepareComplete: the partitions are done with.
			next := cur.clone()
			next.state = stateCompleteAbort
			if cur.state == statePrepareCommit {
				next.state = stateCompleteCommit
			}
			next.partitions = map[TopicPartition]struct{}{}
			next.updateMs = c.cfg.Now().UnixMilli()
			return next, 0, true
		})
		switch code {
		case 0:
			return
		case codeNotCoordinator, codeLoadInProgress, kerr.InvalidTxnState.Code:
			log.Info("not completing the transaction", "err", kerr.ErrorForCode(code))
			return
		}
		log.Warn("writing the transaction's completion failed; retrying", "err", kerr.ErrorForCode(code))
		if !pause() {
			return
		}
	}
}

// abortTimedOut aborts every Ongoing transaction older than its timeout, fencing its
// producer with an epoch bump, as Kafka's abortTimedOutTransactions does. The PrepareAbort
// writes happen here; the markers follow in the background.
func (c *Coordinator) abortTimedOut() {
	type candidate struct {
		id    string
		pid   int64
		epoch int16
	}
	var expired []candidate
	c.mu.Lock()
	now := c.cfg.Now().UnixMilli()
	for _, m := range c.txns {
		if m.pending == nil && m.state == stateOngoing && m.startMs+int64(m.timeoutMs) < now {
			expired = append(expired, candidate{m.id, m.producerID, m.epoch})
		}
	}
	c.mu.Unlock()
	for _, e := range expired {
		code, next, m, p := c.transition(c.ctx, e.id, func(_ *ownedPartition, m *txnMeta) (txnState, int16, bool) {
			if m == nil || m.producerID != e.pid || m.epoch != e.epoch || m.state != stateOngoing {
				return txnState{}, kerr.InvalidTxnState.Code, false // it moved on meanwhile
			}
			next, ok := fenceAbort(m, c.cfg.Now().UnixMilli())
			if !ok {
				return txnState{}, kerr.UnknownServerError.Code, false
			}
			return next, 0, true
		})
		if code != 0 {
			c.cfg.Logger.Info("not aborting a timed-out transaction", "transactional_id", e.id, "err", kerr.ErrorForCode(code))
			continue
		}
		c.cfg.Logger.Info("aborting a timed-out transaction", "transactional_id", e.id, "producer_id", next.producerID, "producer_epoch", next.epoch)
		c.startCompletion(p, m)
	}
}

// expireTransactionalIDs forgets transactional ids idle for IDExpiration in Empty,
// CompleteCommit or CompleteAbort, writing one tombstone batch per partition, as Kafka's
// removeExpiredTransactionalIds does. An id is removed from memory only once its tombstone
// is committed and nothing touched it meanwhile.
func (c *Coordinator) expireTransactionalIDs() {
	type expiry struct {
		p    *ownedPartition
		ms   []*txnMeta
		dead []*txnState
	}
	c.mu.Lock()
	cutoff := c.cfg.Now().Add(-c.cfg.IDExpiration).UnixMilli()
	byPartition := map[int32]*expiry{}
	for _, m := range c.txns {
		if m.pending != nil || m.completing || !m.state.expirable() || m.updateMs > cutoff {
			continue
		}
		p, ok := c.owned[m.partition]
		if !ok {
			continue
		}
		e := byPartition[m.partition]
		if e == nil {
			e = &expiry{p: p}
			byPartition[m.partition] = e
		}
		dead := m.clone()
		dead.state = stateDead
		m.pending = &dead // Kafka's prepareDead
		e.ms = append(e.ms, m)
		e.dead = append(e.dead, &dead)
	}
	c.mu.Unlock()

	for _, e := range byPartition {
		records := make([]stateRecord, len(e.ms))
		for i, m := range e.ms {
			records[i] = stateRecord{key: stateKey(m.id)}
		}
		batch, err := encodeBatch(records, c.cfg.Now())
		if err == nil {
			ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			_, err = e.p.log.Append(ctx, batch)
			cancel()
		}
		c.mu.Lock()
		for i, m := range e.ms {
			if c.owned[e.p.id] != e.p || c.txns[m.id] != m || m.pending != e.dead[i] {
				continue
			}
			m.pending = nil
			if err == nil {
				delete(c.txns, m.id)
			}
		}
		c.mu.Unlock()
		if err != nil {
			c.cfg.Logger.Warn("writing transactional id tombstones failed", "partition", e.p.id, "ids", len(e.ms), "err", err)
		} else {
			c.cfg.Logger.Info("expired transactional ids", "partition", e.p.id, "ids", len(e.ms))
		}
	}
}
