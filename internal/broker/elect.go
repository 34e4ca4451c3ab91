package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

// handleElectLeaders runs a preferred (type 0, and every v0 request) or unclean (type 1)
// leader election through the controller (kafka-leader-election.sh, kadm.ElectLeaders).
func (b *Broker) handleElectLeaders(ctx context.Context, req *kmsg.ElectLeadersRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	if req.ElectionType != 0 && req.ElectionType != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	var partitions []cluster.TopicPartition
	if req.Topics != nil {
		partitions = []cluster.TopicPartition{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				partitions = append(partitions, cluster.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	unclean := req.ElectionType == 1
	results, err := b.meta.ElectLeaders(ctx, unclean, partitions)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	for _, r := range results {
		if len(resp.Topics) == 0 || resp.Topics[len(resp.Topics)-1].Topic != r.Topic {
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = r.Partition
		switch r.Outcome {
		case cluster.ElectionNotNeeded:
			rp.ErrorCode = kerr.ElectionNotNeeded.Code
		case cluster.LeaderNotAvailable:
			rp.ErrorCode = kerr.PreferredLeaderNotAvailable.Code
			if unclean {
				rp.ErrorCode = kerr.EligibleLeadersNotAvailable.Code
			}
		case cluster.UnknownPartition:
			rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return resp
}
