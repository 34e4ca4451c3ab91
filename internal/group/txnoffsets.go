package group

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// Transactional offset commits (KIP-98, KIP-447). A transactional producer that consumes
// commits its input offsets with TxnOffsetCommit: they are written to __consumer_offsets
// in a transactional batch of the producer's, and stay pending, invisible to OffsetFetch,
// until the transaction's marker lands in the same partition: COMMIT makes them the
// group's committed offsets, ABORT drops them. Replay follows the same rule, so offsets of
// an aborted transaction are never applied.

// transactionalBatch is the RecordBatch attribute bit of a transactional batch (Kafka's
// RecordBatch TRANSACTIONAL_FLAG_MASK).
const transactionalBatch = 0x10

// txnCommit answers TxnOffsetCommit as Kafka's GroupCoordinator.handleTxnCommitOffsets:
// the group is validated (generation, member and static instance, when the request carries
// them: KIP-447 fences a zombie member's transaction through its group metadata), the
// offsets are written as the producer's transactional batch and held pending until the
// transaction ends. A group not known yet is created, as a group that only commits.
func (c *Coordinator) txnCommit(r *kmsg.TxnOffsetCommitRequest) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	answer := func(code func(t kmsg.TxnOffsetCommitRequestTopic, p kmsg.TxnOffsetCommitRequestTopicPartition) int16) {
		resp.Topics = resp.Topics[:0]
		for _, t := range r.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(t, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	all := func(code int16) (kmsg.Response, Wait) {
		answer(func(kmsg.TxnOffsetCommitRequestTopic, kmsg.TxnOffsetCommitRequestTopicPartition) int16 { return code })
		return resp, nil
	}
	if r.Group == "" {
		return all(kerr.InvalidGroupID.Code)
	}
	c.mu.Lock()
	partition := c.PartitionOf(r.Group)
	log, loaded := c.logs[partition]
	if !loaded {
		c.mu.Unlock()
		return all(kerr.NotCoordinator.Code)
	}
	if code := c.validateTxnCommitLocked(r); code != 0 {
		c.mu.Unlock()
		return all(code)
	}
	now := c.cfg.Now()
	var records []kv
	updates := map[topicPartition]committed{}
	answer(func(t kmsg.TxnOffsetCommitRequestTopic, p kmsg.TxnOffsetCommitRequestTopicPartition) int16 {
		topic := t.Topic
		if r.Version >= 6 {
			name, ok := c.topics.TopicName(t.TopicID)
			if !ok {
				return kerr.UnknownTopicID.Code
			}
			topic = name
		}
		n, ok := c.topics.PartitionCount(topic)
		switch {
		case !ok || p.Partition < 0 || p.Partition >= n:
			return kerr.UnknownTopicOrPartition.Code
		case p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadata:
			return kerr.OffsetMetadataTooLarge.Code
		}
		cm := committed{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: deref(p.Metadata), timestamp: now.UnixMilli(), recordOffset: -1}
		updates[topicPartition{topic, p.Partition}] = cm
		records = append(records, kv{offsetKey(r.Group, topic, p.Partition), offsetValue(cm)})
		return 0
	})
	if len(records) == 0 {
		c.mu.Unlock()
		return resp, nil
	}
	// Pending from before the write, as Kafka's GroupMetadata.prepareTxnOffsetCommit: an
	// OffsetFetch with RequireStable must not answer the old offset while it is written.
	g := c.groupLocked(r.Group, partition, true)
	pending := g.pendingOf(r.ProducerID)
	for tp, cm := range updates {
		pending[tp] = cm
	}
	c.mu.Unlock()
	batch, err := encodeTxnBatch(records, r.ProducerID, r.ProducerEpoch, now.UnixMilli())
	if err != nil {
		c.dropPrepared(r.Group, r.ProducerID, updates)
		return all(kerr.UnknownServerError.Code)
	}
	return nil, func(ctx context.Context) kmsg.Response {
		var last int64
		var err error
		if tl, ok := log.(TxnOffsetsLog); ok {
			last, err = tl.AppendTransactional(ctx, batch, r.TransactionalID)
		} else {
			last, err = log.Append(ctx, batch)
		}
		if err != nil {
			c.dropPrepared(r.Group, r.ProducerID, updates)
			code := txnCommitErrorCode(err)
			c.cfg.Logger.Warn("writing transactional offsets", "group", r.Group, "producer", r.ProducerID, "err", err)
			answer(func(kmsg.TxnOffsetCommitRequestTopic, kmsg.TxnOffsetCommitRequestTopicPartition) int16 { return code })
			return resp
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if g := c.groups[r.Group]; g != nil {
			if pending := g.pendingTxn[r.ProducerID]; pending != nil {
				for tp := range updates {
					if cm, ok := pending[tp]; ok && cm.recordOffset < 0 {
						cm.recordOffset = last
						pending[tp] = cm
					}
				}
			}
		}
		return resp
	}
}

// txnCommitErrorCode is the answer to a TxnOffsetCommit whose write failed, as Kafka's
// GroupMetadataManager.storeOffsets maps the append's error: a fenced producer or a failed
// KIP-890 verification hears its own error; a lost leadership or a storage failure sends
// the client to find the coordinator again; a record too large is an invalid commit size;
// anything else (a timeout, missing replicas) is COORDINATOR_NOT_AVAILABLE, retried.
func txnCommitErrorCode(err error) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut, kerr.UnknownServerError:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		return kerr.InvalidCommitOffsetSize.Code
	}
	return ke.Code
}

// validateTxnCommitLocked decides whether a group takes a TxnOffsetCommit, as Kafka 4.x
// does (OffsetMetadataManager.validateTransactionalOffsetCommit, then
// ClassicGroup.validateOffsetCommit or ConsumerGroup.validateOffsetCommit with
// isTransactional; 3.x GroupCoordinator.doTxnCommitOffsets agrees but for the member id of
// a commit from outside an empty group, which 4.x ignores as commit does here). A group
// that does not exist takes a commit from outside any group as a group of its own; the
// member is checked only for what the request carries (generation, member id, instance id:
// KIP-447 fences a zombie's transaction through them); unlike OffsetCommit, a transactional
// commit is taken while the group completes a rebalance.
func (c *Coordinator) validateTxnCommitLocked(r *kmsg.TxnOffsetCommitRequest) int16 {
	g := c.groups[r.Group]
	switch {
	case g == nil && r.Generation < 0:
		return 0
	case g == nil:
		return kerr.IllegalGeneration.Code
	case g.isConsumerGroup():
		// KIP-848: the member's epoch stands for the generation.
		if r.Generation < 0 && !g.hasMembers() {
			return 0
		}
		return g.consumer.checkEpoch(r.MemberID, r.Generation)
	case r.Generation < 0 && g.state == stateEmpty:
		return 0
	case r.Generation < 0 && r.MemberID == "" && r.InstanceID == nil:
		return 0
	}
	// ClassicGroup.validateMember: a static member by its instance, others by their id.
	if r.InstanceID != nil && *r.InstanceID != "" {
		if code := g.validateInstance(r.MemberID, r.InstanceID); code != 0 {
			return code
		}
	} else if g.members[r.MemberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	if r.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// pendingOf is the pending offsets of producerID's transaction, made on first use.
func (g *group) pendingOf(producerID int64) map[topicPartition]committed {
	if g.pendingTxn == nil {
		g.pendingTxn = map[int64]map[topicPartition]committed{}
	}
	p := g.pendingTxn[producerID]
	if p == nil {
		p = map[topicPartition]committed{}
		g.pendingTxn[producerID] = p
	}
	return p
}

// hasPendingTxn reports whether a transaction holds offsets of tp not yet committed.
func (g *group) hasPendingTxn(tp topicPartition) bool {
	for _, p := range g.pendingTxn {
		if _, ok := p[tp]; ok {
			return true
		}
	}
	return false
}

// dropPrepared forgets the pending offsets of a TxnOffsetCommit whose write failed, as
// Kafka's GroupMetadata.failPendingTxnOffsetCommit; entries another commit of the same
// transaction has written since stay.
func (c *Coordinator) dropPrepared(groupID string, producerID int64, updates map[topicPartition]committed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupID]
	if g == nil {
		return
	}
	pending := g.pendingTxn[producerID]
	for tp := range updates {
		if cm, ok := pending[tp]; ok && cm.recordOffset < 0 {
			delete(pending, tp)
		}
	}
	if len(pending) == 0 {
		delete(g.pendingTxn, producerID)
	}
	c.dropIfDeadLocked(g)
}

// CompleteTransaction applies the marker that ended producerID's transaction in
// __consumer_offsets partition: once the marker is committed, the broker calls it so that
// COMMIT makes the transaction's offsets the groups' committed offsets and ABORT drops
// them (Kafka's GroupCoordinator.scheduleHandleTxnCompletion).
func (c *Coordinator) CompleteTransaction(partition int32, producerID int64, commit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.logs[partition]; !ok {
		return // not loaded here: the replay of whoever loads it applies the marker
	}
	c.completeTxnLocked(partition, producerID, commit)
}

// completeTxnLocked ends producerID's transaction in every group of partition. A committed
// offset replaces the group's only when written after it, as in Kafka's
// GroupMetadata.completePendingTxnOffsetCommit: a plain OffsetCommit that came later wins.
func (c *Coordinator) completeTxnLocked(partition int32, producerID int64, commit bool) {
	for _, g := range c.groups {
		pending, ok := g.pendingTxn[producerID]
		if g.partition != partition || !ok {
			continue
		}
		delete(g.pendingTxn, producerID)
		if commit {
			for tp, cm := range pending {
				if cur, ok := g.offsets[tp]; !ok || cur.recordOffset < cm.recordOffset {
					g.offsets[tp] = cm
				}
			}
		}
		c.dropIfDeadLocked(g)
	}
}

// applyTxnRecord applies, during replay, one record of producerID's transactional batch
// written at recordOffset: an offset commit is held pending until the marker.
func (c *Coordinator) applyTxnRecord(partition int32, producerID, recordOffset int64, key, value []byte) {
	if len(key) < 2 || value == nil {
		return
	}
	if v := binary.BigEndian.Uint16(key); v != 0 && v != 1 {
		return // only offsets are written transactionally
	}
	var k kmsg.OffsetCommitKey
	var v kmsg.OffsetCommitValue
	if k.ReadFrom(key) != nil || v.ReadFrom(value) != nil {
		return
	}
	g := c.groupLocked(k.Group, partition, true)
	g.pendingOf(producerID)[topicPartition{k.Topic, k.Partition}] = committed{offset: v.Offset, leaderEpoch: v.LeaderEpoch,
		metadata: v.Metadata, timestamp: v.CommitTimestamp, recordOffset: recordOffset}
}

// encodeTxnBatch builds the transactional batch of producer (producerID, epoch) holding
// records, with no sequence: as Kafka's GroupMetadataManager writes TxnOffsetCommit
// records, the coordinator's own append is not a producer's numbered send (the journal
// checks its epoch only).
func encodeTxnBatch(records []kv, producerID int64, epoch int16, nowMs int64) ([]byte, error) {
	recs := make([]record.Record, len(records))
	for i, r := range records {
		recs[i] = record.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
	}
	return record.Build(record.Header{Attributes: transactionalBatch, BaseTimestamp: nowMs, ProducerID: producerID, ProducerEpoch: epoch, BaseSequence: -1}, recs, record.CodecNone)
}
