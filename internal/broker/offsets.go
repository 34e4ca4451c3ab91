package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
)

// localPartition finds a partition this node leads, or the error code to answer with.
func (b *Broker) localPartition(topic string, id int32) (*partition.Partition, int16) {
	t, ok := b.meta.State().Topics[topic]
	if !ok || id < 0 || int(id) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p, ok := b.partition(topic, id)
	if !ok || !p.IsLeader() {
		return nil, kerr.NotLeaderForPartition.Code
	}
	return p, 0
}

// epochCode checks a client's view of the leader epoch (KIP-320).
func epochCode(current int32, p *partition.Partition) int16 {
	switch {
	case current < 0:
		return 0
	case current < p.LeaderEpoch():
		return kerr.FencedLeaderEpoch.Code
	case current > p.LeaderEpoch():
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}

// Special timestamps of ListOffsets.
const (
	latestTimestamp   = -1
	earliestTimestamp = -2
	maxTimestamp      = -3 // KIP-734
)

func (b *Broker) handleListOffsets(req *kmsg.ListOffsetsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition, rp.Offset, rp.Timestamp, rp.LeaderEpoch = p.Partition, -1, -1, -1
			part, code := b.localPartition(t.Topic, p.Partition)
			if code == 0 {
				code = epochCode(p.CurrentLeaderEpoch, part)
			}
			if code != 0 {
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			l := part.Log()
			rp.LeaderEpoch = part.LeaderEpoch()
			// Kafka's lastFetchableOffset: what a consumer of this isolation level may read.
			fetchable := part.HighWatermark
			if req.IsolationLevel == 1 {
				fetchable = part.LastStableOffset
			}
			switch p.Timestamp {
			case latestTimestamp:
				rp.Offset = fetchable()
			case earliestTimestamp:
				rp.Offset = l.LogStartOffset()
			case maxTimestamp:
				rp.Timestamp, rp.Offset = l.MaxTimestamp()
			default:
				off, ts, found, err := l.OffsetForTimestamp(p.Timestamp)
				switch {
				case err != nil:
					rp.ErrorCode = errorCode(err)
				case found && off < fetchable():
					rp.Offset, rp.Timestamp = off, ts
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition, rp.LowWatermark = p.Partition, -1
			part, code := b.localPartition(t.Topic, p.Partition)
			if code != 0 {
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			hw := part.HighWatermark()
			offset := p.Offset
			if offset == -1 {
				offset = hw
			}
			if offset < 0 || offset > hw {
				rp.ErrorCode = kerr.OffsetOutOfRange.Code
			} else if err := part.Log().AdvanceStartOffset(offset); err != nil {
				rp.ErrorCode = errorCode(err)
			}
			rp.LowWatermark = part.Log().LogStartOffset()
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition, rp.LeaderEpoch, rp.EndOffset = p.Partition, -1, -1
			part, code := b.localPartition(t.Topic, p.Partition)
			if code == 0 {
				code = epochCode(p.CurrentLeaderEpoch, part)
			}
			if code != 0 {
				rp.ErrorCode = code
			} else {
				rp.LeaderEpoch, rp.EndOffset = part.Log().EndOffsetForEpoch(p.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
