package broker

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

func (b *Broker) brokersFor(s *cluster.State) []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	for _, br := range s.Brokers {
		if br.Fenced {
			continue
		}
		m := kmsg.NewMetadataResponseBroker()
		m.NodeID, m.Host, m.Port = br.ID, br.Host, br.Port
		if br.Rack != "" {
			rack := br.Rack
			m.Rack = &rack
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func (b *Broker) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	s := b.meta.State()
	resp.Brokers = b.brokersFor(s)
	clusterID := s.ClusterID
	resp.ClusterID = &clusterID
	resp.ControllerID = s.ControllerID

	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for name := range s.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
	} else {
		for _, t := range req.Topics {
			switch {
			case t.Topic != nil:
				names = append(names, *t.Topic)
			case t.TopicID != [16]byte{}:
				if topic, ok := s.TopicByID(t.TopicID); ok {
					names = append(names, topic.Name)
				} else {
					mt := kmsg.NewMetadataResponseTopic()
					mt.TopicID = t.TopicID
					mt.ErrorCode = kerr.UnknownTopicID.Code
					resp.Topics = append(resp.Topics, mt)
				}
			}
		}
	}
	autoCreate := !all && (req.Version < 4 || req.AllowAutoTopicCreation)
	if v, _, _ := b.brokerConfig(s, "auto.create.topics.enable"); v != "true" {
		autoCreate = false
	}
	for _, name := range names {
		topic, ok := s.Topics[name]
		if !ok && autoCreate {
			_, err := b.createTopic(ctx, cluster.TopicSpec{Name: name, Partitions: -1, ReplicationFactor: -1}, false)
			if err == nil {
				b.log.Info("auto-created topic", "topic", name)
			}
			if err == nil || errors.Is(err, cluster.ErrTopicExists) {
				s = b.meta.State()
				topic, ok = s.Topics[name]
			}
			if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = kmsg.StringPtr(name)
				mt.ErrorCode = autoCreateErrorCode(err)
				if mt.ErrorCode == kerr.UnknownTopicOrPartition.Code {
					b.log.Debug("auto-creating topic failed", "topic", name, "err", err)
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr(name)
		if !ok {
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		mt.TopicID = topic.ID
		mt.IsInternal = topic.Internal
		for _, p := range topic.Partitions {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Leader, mp.LeaderEpoch = p.ID, p.Leader, p.LeaderEpoch
			mp.Replicas, mp.ISR = p.Replicas, p.ISR
			if _, live := s.Brokers[p.Leader]; !live {
				mp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	fillAuthorizedOperations(req, resp)
	return resp
}

func (b *Broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	s := b.meta.State()
	resp.ClusterID = s.ClusterID
	resp.ControllerID = s.ControllerID
	for _, br := range b.brokersFor(s) {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.NodeID, br.Host, br.Port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	fillAuthorizedOperations(req, resp)
	return resp
}

// createTopic commits a topic and opens its local partitions before returning, so that a
// produce right after creation finds them. A count of -1 takes this node's num.partitions or
// default.replication.factor, static (`serve --broker-config`, Kafka's server.properties)
// before dynamic, as Kafka's broker does for auto-created topics and CreateTopics; a manual
// assignment (which needs -1 for both) fixes both itself.
func (b *Broker) createTopic(ctx context.Context, spec cluster.TopicSpec, validateOnly bool) (*cluster.Topic, error) {
	if s := b.meta.State(); spec.Assignment == nil {
		if spec.Partitions == -1 {
			spec.Partitions = int32(b.brokerConfigInt(s, "num.partitions"))
		}
		if spec.ReplicationFactor == -1 {
			spec.ReplicationFactor = int16(b.brokerConfigInt(s, "default.replication.factor"))
		}
	}
	t, err := b.meta.CreateTopic(ctx, spec, validateOnly)
	if err != nil || validateOnly {
		return t, err
	}
	return t, b.reconcile()
}

// autoCreateErrorCode is what Metadata answers for a topic it could not auto-create. A
// topic the request itself makes invalid keeps that error; any other failure (the metadata
// log cannot be written, no controller, a timeout) is answered as Kafka's
// DefaultAutoTopicCreationManager answers every topic whose creation it has sent on:
// UNKNOWN_TOPIC_OR_PARTITION, which clients retry, and not KAFKA_STORAGE_ERROR, which says
// a partition's disk failed.
func autoCreateErrorCode(err error) int16 {
	switch {
	case errors.Is(err, cluster.ErrInvalidTopic), errors.Is(err, cluster.ErrInvalidPartitions),
		errors.Is(err, cluster.ErrInvalidReplicationFactor), errors.Is(err, cluster.ErrInvalidConfig),
		errors.Is(err, cluster.ErrInvalidRequest):
		return errorCode(err)
	}
	return kerr.UnknownTopicOrPartition.Code
}
