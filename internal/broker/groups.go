package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
)

// offsetsLog adapts a local __consumer_offsets replica to what the coordinator needs.
type offsetsLog struct{ p *partition.Partition }

func (o offsetsLog) Append(ctx context.Context, batch []byte) (int64, error) {
	res, err := o.p.Append(batch, false)
	if err != nil {
		return 0, err
	}
	return res.LastOffset, o.p.WaitCommitted(ctx, res.LastOffset+1)
}

func (o offsetsLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	return o.p.Log().ReadBytes(offset, maxBytes, o.p.HighWatermark(), true)
}

func (o offsetsLog) LogStartOffset() int64 { return o.p.Log().LogStartOffset() }
func (o offsetsLog) LogEndOffset() int64   { return o.p.HighWatermark() }

// PartitionCount implements group.Topics.
func (b *Broker) PartitionCount(topic string) (int32, bool) {
	t, ok := b.meta.State().Topics[topic]
	if !ok {
		return 0, false
	}
	return int32(len(t.Partitions)), true
}

// TopicID implements group.Topics.
func (b *Broker) TopicID(topic string) ([16]byte, bool) {
	t, ok := b.meta.State().Topics[topic]
	if !ok {
		return [16]byte{}, false
	}
	return t.ID, true
}

// TopicName implements group.Topics.
func (b *Broker) TopicName(id [16]byte) (string, bool) {
	for name, t := range b.meta.State().Topics {
		if t.ID == id {
			return name, true
		}
	}
	return "", false
}

// TopicNames implements group.Topics.
func (b *Broker) TopicNames() []string {
	topics := b.meta.State().Topics
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	return names
}

// startGroups creates __consumer_offsets if needed and the coordinator for its local
// partitions.
func (b *Broker) startGroups(ctx context.Context) error {
	s := b.meta.State()
	n := int32(b.brokerConfigInt(s, "offsets.topic.num.partitions"))
	b.groups = group.NewCoordinator(group.Config{
		NumPartitions:             n,
		MinSessionTimeout:         time.Duration(b.brokerConfigInt(s, "group.min.session.timeout.ms")) * time.Millisecond,
		MaxSessionTimeout:         time.Duration(b.brokerConfigInt(s, "group.max.session.timeout.ms")) * time.Millisecond,
		InitialRebalanceDelay:     b.groupInitialDelay(s),
		MaxRecordBytes:            int(b.brokerConfigInt(s, "message.max.bytes")),
		MaxGroupSize:              int(b.brokerConfigInt(s, "group.max.size")),
		OffsetsRetention:          time.Duration(b.brokerConfigInt(s, "offsets.retention.minutes")) * time.Minute,
		ConsumerSessionTimeout:    time.Duration(b.brokerConfigInt(s, "group.consumer.session.timeout.ms")) * time.Millisecond,
		ConsumerHeartbeatInterval: time.Duration(b.brokerConfigInt(s, "group.consumer.heartbeat.interval.ms")) * time.Millisecond,
		MaxConsumerGroupSize:      int(b.brokerConfigInt(s, "group.consumer.max.size")),
		Logger:                    b.log,
	}, b)
	if _, ok := s.Topics[group.OffsetsTopic]; !ok {
		_, err := b.createInternalTopic(ctx, cluster.TopicSpec{Name: group.OffsetsTopic, Partitions: n, ReplicationFactor: 1,
			Configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}, Internal: true})
		if err != nil {
			return fmt.Errorf("create %s: %w", group.OffsetsTopic, err)
		}
	}
	return b.loadGroups(ctx)
}

func (b *Broker) groupInitialDelay(s *cluster.State) time.Duration {
	d := time.Duration(b.brokerConfigInt(s, "group.initial.rebalance.delay.ms")) * time.Millisecond
	if b.cfg.GroupInitialRebalanceDelay != nil {
		d = *b.cfg.GroupInitialRebalanceDelay
	}
	if d == 0 {
		d = -1 // the coordinator reads 0 as "use Kafka's default"
	}
	return d
}

func (b *Broker) createInternalTopic(ctx context.Context, spec cluster.TopicSpec) (*cluster.Topic, error) {
	return b.createTopic(ctx, spec, false)
}

// loadGroups hands every local __consumer_offsets partition not yet loaded to the coordinator.
func (b *Broker) loadGroups(ctx context.Context) error {
	if b.groups == nil {
		return nil
	}
	t, ok := b.meta.State().Topics[group.OffsetsTopic]
	if !ok {
		return nil
	}
	for _, p := range t.Partitions {
		part, local := b.partition(group.OffsetsTopic, p.ID)
		if !local || b.groups.IsLoaded(p.ID) {
			continue
		}
		if err := b.groups.Load(ctx, p.ID, offsetsLog{part}); err != nil {
			return fmt.Errorf("load groups of %s-%d: %w", group.OffsetsTopic, p.ID, err)
		}
	}
	return nil
}

// handleGroup relays a group API request to the coordinator.
func (b *Broker) handleGroup(ctx context.Context, req *kafka.Request) kafka.Response {
	host := ""
	if req.Conn.Remote != nil {
		host = req.Conn.Remote.String()
	}
	clientID := ""
	if req.ClientID != nil {
		clientID = *req.ClientID
	}
	resp, wait := b.groups.Handle(ctx, req.Body, group.Client{ID: clientID, Host: "/" + host})
	if wait != nil {
		return pendingGroup(wait)
	}
	if resp == nil {
		return kafka.CloseConnection
	}
	return resp
}

type pendingGroup group.Wait

func (p pendingGroup) Wait(ctx context.Context) kafka.Response { return group.Wait(p)(ctx) }

// handleFindCoordinator: a single node coordinates every group whose partition it has loaded.
func (b *Broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	s := b.meta.State()
	self := s.Brokers[b.cfg.NodeID]
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID = key, -1
		switch {
		case req.CoordinatorType != 0:
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			c.ErrorMessage = kmsg.StringPtr("transactions are not supported")
		case b.groups == nil || !b.groups.IsLoaded(b.groups.PartitionOf(key)):
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		default:
			c.NodeID, c.Host, c.Port = self.ID, self.Host, self.Port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp
}
