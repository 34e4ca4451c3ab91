package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxOffsetMetadata is offset.metadata.max.bytes.
const maxOffsetMetadata = 4096

func (c *Coordinator) commit(r *kmsg.OffsetCommitRequest) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	answer := func(code func(topic string, p kmsg.OffsetCommitRequestTopicPartition) int16) {
		resp.Topics = resp.Topics[:0]
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(t.Topic, p)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	all := func(code int16) (kmsg.Response, Wait) {
		answer(func(string, kmsg.OffsetCommitRequestTopicPartition) int16 { return code })
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
	if code := c.validateCommitLocked(r); code != 0 {
		c.mu.Unlock()
		return all(code)
	}
	now := c.cfg.Now()
	var records []kv
	updates := map[topicPartition]committed{}
	answer(func(topic string, p kmsg.OffsetCommitRequestTopicPartition) int16 {
		n, ok := c.topics.PartitionCount(topic)
		switch {
		case !ok || p.Partition < 0 || p.Partition >= n:
			return kerr.UnknownTopicOrPartition.Code
		case p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadata:
			return kerr.OffsetMetadataTooLarge.Code
		}
		cm := committed{offset: p.Offset, leaderEpoch: p.LeaderEpoch, metadata: deref(p.Metadata), timestamp: now.UnixMilli()}
		updates[topicPartition{topic, p.Partition}] = cm
		records = append(records, kv{offsetKey(r.Group, topic, p.Partition), offsetValue(cm)})
		return 0
	})
	c.mu.Unlock()
	if len(records) == 0 {
		return resp, nil
	}
	batch, err := encodeBatch(records, now)
	if err != nil {
		return all(kerr.UnknownServerError.Code)
	}
	return nil, func(ctx context.Context) kmsg.Response {
		last, err := log.Append(ctx, batch)
		if err != nil {
			c.cfg.Logger.Warn("writing committed offsets", "group", r.Group, "err", err)
			answer(func(string, kmsg.OffsetCommitRequestTopicPartition) int16 { return kerr.CoordinatorNotAvailable.Code })
			return resp
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		g := c.groupLocked(r.Group, partition, true)
		for tp, cm := range updates {
			cm.recordOffset = last
			g.offsets[tp] = cm
		}
		return resp
	}
}

// validateCommitLocked is whether a group takes an OffsetCommit, as Kafka decides it
// (3.x GroupCoordinator.handleCommitOffsets, validateOffsetCommit and doCommitOffsets; 4.x
// OffsetMetadataManager.validateOffsetCommit, ClassicGroup.validateOffsetCommit and
// ConsumerGroup.validateOffsetCommit).
func (c *Coordinator) validateCommitLocked(r *kmsg.OffsetCommitRequest) int16 {
	g := c.groups[r.Group]
	switch {
	case g == nil && r.Generation < 0:
		// A group that does not use group management (an assign() consumer, an admin
		// client), whatever member id it sends: KIP-848 consumers send theirs.
		return 0
	case g == nil && r.Version >= 9:
		return kerr.GroupIDNotFound.Code
	case g == nil:
		return kerr.IllegalGeneration.Code
	case g.isConsumerGroup():
		if r.Generation < 0 && !g.hasMembers() {
			return 0
		}
		return g.consumer.checkEpoch(r.MemberID, r.Generation)
	case r.Generation < 0 && g.state == stateEmpty:
		return 0
	case r.Generation < 0 && r.MemberID == "" && r.InstanceID == nil:
		// From outside a group that has members: only members may commit.
		return kerr.UnknownMemberID.Code
	}
	_, m, code := c.memberLocked(r.Group, r.MemberID, r.InstanceID, r.Generation)
	switch {
	case code != 0:
		return code
	case g.state == stateCompletingRebalance:
		// The member has its generation but not yet its assignment.
		return kerr.RebalanceInProgress.Code
	}
	// Stable or PreparingRebalance: the commit is taken (members commit in their revoke
	// callback before they rejoin) and counts as a heartbeat.
	m.lastHeard = c.cfg.Now()
	return 0
}

func (c *Coordinator) fetchOffsets(r *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Version >= 8 {
		for _, rg := range r.Groups {
			var topics []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				topics = []kmsg.OffsetFetchRequestTopic{}
				for _, t := range rg.Topics {
					topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			code, rts := c.offsetsLocked(rg.Group, topics, r.RequireStable)
			if g := c.groups[rg.Group]; code == 0 && rg.MemberID != nil && g != nil && g.isConsumerGroup() {
				// KIP-848: a member reads offsets at its current epoch.
				if code = g.consumer.checkEpoch(*rg.MemberID, rg.MemberEpoch); code != 0 {
					rts = nil
				}
			}
			out := kmsg.NewOffsetFetchResponseGroup()
			out.Group, out.ErrorCode = rg.Group, code
			for _, t := range rts {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = t.Topic
				for _, p := range t.Partitions {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					ot.Partitions = append(ot.Partitions, op)
				}
				out.Topics = append(out.Topics, ot)
			}
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
	code, rts := c.offsetsLocked(r.Group, r.Topics, r.RequireStable)
	resp.Topics = rts
	if r.Version >= 2 {
		resp.ErrorCode = code
	} else if code != 0 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	return resp
}

// offsetsLocked answers one group's offset fetch; nil topics means every committed one.
// With requireStable (v7+, KIP-447) a partition whose offset a transaction still holds
// pending is answered UNSTABLE_OFFSET_COMMIT, which the client retries, rather than with
// the offset the transaction may replace (Kafka's GroupMetadataManager.getOffsets).
func (c *Coordinator) offsetsLocked(groupID string, topics []kmsg.OffsetFetchRequestTopic, requireStable bool) (int16, []kmsg.OffsetFetchResponseTopic) {
	if _, ok := c.logs[c.PartitionOf(groupID)]; !ok {
		return kerr.NotCoordinator.Code, nil
	}
	g := c.groups[groupID]
	if topics == nil && g != nil {
		byTopic := map[string][]int32{}
		for tp := range g.offsets {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp.partition)
		}
		for t, ps := range byTopic {
			topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: ps})
		}
	}
	var out []kmsg.OffsetFetchResponseTopic
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			switch {
			case g != nil && requireStable && g.hasPendingTxn(topicPartition{t.Topic, p}):
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			case g != nil:
				if cm, ok := g.offsets[topicPartition{t.Topic, p}]; ok {
					rp.Offset, rp.LeaderEpoch, rp.Metadata = cm.offset, cm.leaderEpoch, kmsg.StringPtr(cm.metadata)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return 0, out
}

func (c *Coordinator) offsetDelete(r *kmsg.OffsetDeleteRequest) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
	c.mu.Lock()
	partition := c.PartitionOf(r.Group)
	log, ok := c.logs[partition]
	g := c.groups[r.Group]
	switch {
	case !ok:
		resp.ErrorCode = kerr.NotCoordinator.Code
	case g == nil:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
	}
	if resp.ErrorCode != 0 {
		c.mu.Unlock()
		return resp, nil
	}
	var records []kv
	var gone []topicPartition
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if g.hasMembers() && g.protocolType == "consumer" {
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				records = append(records, kv{key: offsetKey(r.Group, t.Topic, p.Partition)})
				gone = append(gone, topicPartition{t.Topic, p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	c.mu.Unlock()
	if len(records) == 0 {
		return resp, nil
	}
	batch, err := encodeBatch(records, c.cfg.Now())
	if err != nil {
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil
	}
	return nil, func(ctx context.Context) kmsg.Response {
		if _, err := log.Append(ctx, batch); err != nil {
			resp.ErrorCode, resp.Topics = kerr.CoordinatorNotAvailable.Code, nil
			return resp
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
		return resp
	}
}
