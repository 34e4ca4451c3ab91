package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/txn"
)

// offsetsLog adapts a local __consumer_offsets replica to what the coordinator needs.
type offsetsLog struct {
	p *partition.Partition
	b *Broker // for the KIP-890 verification of transactional offsets (producers.go)
}

func (o offsetsLog) Append(ctx context.Context, batch []byte) (int64, error) {
	// Group state is written as acks=all: a coordinator that moves finds it on the new leader.
	res, err := o.p.Append(batch, false, true, 1)
	if err != nil {
		// The coordinator passes some refusals on as their Kafka errors (a fenced
		// producer's TxnOffsetCommit): it gets the code along with the cause.
		return 0, fmt.Errorf("%w (%w)", err, kerr.ErrorForCode(errorCode(err)))
	}
	return res.LastOffset, o.p.WaitCommitted(ctx, res.LastOffset+1, true, 1)
}

// The group coordinator loads to the log end too (see txnLog): committed offsets above a
// new leader's lagging high watermark are committed all the same.
func (o offsetsLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	return o.p.Log().ReadBytes(offset, maxBytes, o.p.Log().LogEndOffset(), true)
}

func (o offsetsLog) LogStartOffset() int64 { return o.p.Log().LogStartOffset() }
func (o offsetsLog) LogEndOffset() int64   { return o.p.Log().LogEndOffset() }

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

// startGroups starts the coordinator for the local __consumer_offsets partitions this node
// leads. The topic itself is created at the first FindCoordinator, as Kafka does, when the
// cluster's brokers have registered and it can be replicated.
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
		ConsumerGroupConfig:       b.consumerGroupConfig,
		Logger:                    b.log,
	}, b)
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

// ensureOffsetsTopic creates __consumer_offsets if it does not exist yet, replicated
// offsets.topic.replication.factor times or on every live broker if there are fewer.
func (b *Broker) ensureOffsetsTopic(ctx context.Context) error {
	s := b.meta.State()
	if _, ok := s.Topics[group.OffsetsTopic]; ok {
		return nil
	}
	rf := min(int(b.brokerConfigInt(s, "offsets.topic.replication.factor")), len(s.LiveBrokers()))
	_, err := b.createTopic(ctx, cluster.TopicSpec{Name: group.OffsetsTopic, Partitions: int32(b.brokerConfigInt(s, "offsets.topic.num.partitions")),
		ReplicationFactor: int16(max(rf, 1)), Configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}, Internal: true}, false)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("create %s: %w", group.OffsetsTopic, err)
	}
	return b.loadGroups(ctx)
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
		leads := local && p.Leader == b.cfg.NodeID
		if !leads {
			if b.groups.IsLoaded(p.ID) {
				b.groups.Unload(p.ID) // the coordinator moved with the partition's leadership
			}
			continue
		}
		if b.groups.IsLoaded(p.ID) {
			continue
		}
		if err := b.groups.Load(ctx, p.ID, offsetsLog{p: part, b: b}); err != nil {
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
	fillAuthorizedOperations(req.Body, resp)
	return resp
}

type pendingGroup group.Wait

func (p pendingGroup) Wait(ctx context.Context) kafka.Response { return group.Wait(p)(ctx) }

// handleFindCoordinator: a group's coordinator is the leader of its __consumer_offsets
// partition, a transactional id's the leader of its __transaction_state partition; any node
// answers from its metadata. Each topic is created at the first request for its kind of
// coordinator, as Kafka does.
func (b *Broker) handleFindCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	switch req.CoordinatorType {
	case 0:
		if err := b.ensureOffsetsTopic(ctx); err != nil {
			b.log.Warn("creating the group coordinator's topic", "err", err)
		}
	case 1:
		if err := b.ensureTxnTopic(ctx); err != nil {
			b.log.Warn("creating the transaction coordinator's topic", "err", err)
		}
	}
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	s := b.meta.State()
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID = key, -1
		var (
			topic    *cluster.Topic
			id       int32
			isLoaded func(int32) bool
		)
		switch req.CoordinatorType {
		case 0:
			topic = s.Topics[group.OffsetsTopic]
			if b.groups != nil {
				id, isLoaded = b.groups.PartitionOf(key), b.groups.IsLoaded
			}
		case 1:
			topic = s.Topics[txn.StateTopic]
			if b.txns != nil && topic != nil {
				id, isLoaded = txn.PartitionFor(key, int32(len(topic.Partitions))), b.txns.IsLoaded
			}
		default:
			c.ErrorCode = kerr.InvalidRequest.Code
			c.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("unknown coordinator type %d", req.CoordinatorType))
			resp.Coordinators = append(resp.Coordinators, c)
			continue
		}
		if topic == nil || isLoaded == nil {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			resp.Coordinators = append(resp.Coordinators, c)
			continue
		}
		leader := topic.Partitions[id].Leader
		br, live := s.Brokers[leader]
		if !live || br.Fenced || leader == b.cfg.NodeID && !isLoaded(id) {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		} else {
			c.NodeID, c.Host, c.Port = br.ID, br.Host, br.Port
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
