package broker

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

// Partition reassignment (KIP-455): AlterPartitionReassignments starts, replaces or, with
// null replicas, cancels a partition's move; ListPartitionReassignments reports the moves
// in progress; UnregisterBroker removes a broker and reassigns its replicas. The
// controller does the moving (cluster.Node.ReassignPartition, UnregisterBroker).

// reassignErrorCode refines errorCode for the errors only reassignments meet.
func reassignErrorCode(err error, unregister bool) int16 {
	switch {
	case errors.Is(err, cluster.ErrUnknownBroker) && unregister:
		return kerr.BrokerIDNotRegistered.Code
	case errors.Is(err, cluster.ErrNoReassignment):
		return kerr.NoReassignmentInProgress.Code
	case errors.Is(err, cluster.ErrUnknownBroker), errors.Is(err, cluster.ErrInvalidRequest):
		return kerr.InvalidReplicaAssignment.Code
	}
	return errorCode(err)
}

func (b *Broker) handleAlterPartitionReassignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			var err error
			if p.Replicas != nil && req.Version >= 1 && !req.AllowReplicationFactorChange {
				err = b.sameReplicationFactor(t.Topic, p.Partition, len(p.Replicas))
			}
			if err == nil {
				err = b.meta.ReassignPartition(ctx, t.Topic, p.Partition, p.Replicas)
			}
			rp.ErrorCode, rp.ErrorMessage = reassignErrorCode(err, false), errorMessage(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// sameReplicationFactor refuses a target that changes the partition's replica count.
func (b *Broker) sameReplicationFactor(topic string, partition int32, want int) error {
	t, ok := b.meta.State().Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return cluster.ErrUnknownTopic
	}
	p := t.Partitions[partition]
	if have := len(p.Replicas) - len(p.AddingReplicas); have != want {
		return cluster.ErrInvalidReplicationFactor
	}
	return nil
}

func (b *Broker) handleListPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	// Reassignments come ordered by topic, so each topic's partitions are adjacent.
	for _, r := range b.meta.State().Reassignments() {
		if req.Topics != nil && !wanted(req.Topics, r.Topic, r.Partition) {
			continue
		}
		if len(resp.Topics) == 0 || resp.Topics[len(resp.Topics)-1].Topic != r.Topic {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = r.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition, rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas
		rt.Partitions = append(rt.Partitions, rp)
	}
	return resp
}

func wanted(topics []kmsg.ListPartitionReassignmentsRequestTopic, topic string, partition int32) bool {
	for _, t := range topics {
		if t.Topic == topic && slices.Contains(t.Partitions, partition) {
			return true
		}
	}
	return false
}

func (b *Broker) handleUnregisterBroker(ctx context.Context, req *kmsg.UnregisterBrokerRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	err := b.meta.UnregisterBroker(ctx, req.BrokerID)
	resp.ErrorCode, resp.ErrorMessage = reassignErrorCode(err, true), errorMessage(err)
	return resp
}
