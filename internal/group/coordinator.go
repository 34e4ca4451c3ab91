package group

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topics tells the coordinator which topics and partitions exist: to validate commits
// and, for KIP-848 groups, to resolve subscriptions and assign partitions.
type Topics interface {
	PartitionCount(topic string) (int32, bool)
	TopicID(topic string) ([16]byte, bool)
	TopicName(id [16]byte) (string, bool)
	TopicNames() []string
}

// Config holds the coordinator's settings; zero values take Kafka's defaults.
type Config struct {
	NumPartitions         int32         // offsets.topic.num.partitions
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms (negative: none)
	MaxGroupSize          int           // group.max.size; 0 means no limit
	OffsetsRetention      time.Duration // offsets.retention.minutes
	RetentionCheck        time.Duration // offsets.retention.check.interval.ms
	MaxRecordBytes        int           // the largest record __consumer_offsets takes (its max.message.bytes)
	// KIP-848 consumer groups.
	ConsumerSessionTimeout    time.Duration // group.consumer.session.timeout.ms
	ConsumerHeartbeatInterval time.Duration // group.consumer.heartbeat.interval.ms
	MaxConsumerGroupSize      int           // group.consumer.max.size; 0 means no limit
	Now                       func() time.Time
	Logger                    *slog.Logger

	// ConsumerGroupConfig, when set, gives a KIP-848 group's own session timeout and
	// heartbeat interval (group config resources); zero keeps ConsumerSessionTimeout or
	// ConsumerHeartbeatInterval. It is called with the coordinator's lock held and must not
	// call back into it.
	ConsumerGroupConfig func(groupID string) (sessionTimeout, heartbeatInterval time.Duration)
}

func (c Config) withDefaults() Config {
	if c.NumPartitions <= 0 {
		c.NumPartitions = 50
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = 3 * time.Second
	}
	if c.OffsetsRetention <= 0 {
		c.OffsetsRetention = 7 * 24 * time.Hour
	}
	if c.RetentionCheck <= 0 {
		c.RetentionCheck = 10 * time.Minute
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 1048588
	}
	if c.ConsumerSessionTimeout <= 0 {
		c.ConsumerSessionTimeout = 45 * time.Second
	}
	if c.ConsumerHeartbeatInterval <= 0 {
		c.ConsumerHeartbeatInterval = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Coordinator runs the groups of the __consumer_offsets partitions this node leads.
type Coordinator struct {
	cfg    Config
	topics Topics

	mu     sync.Mutex
	logs   map[int32]OffsetsLog // loaded partitions
	groups map[string]*group

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewCoordinator starts a coordinator with no partitions loaded; Close stops it.
func NewCoordinator(cfg Config, topics Topics) *Coordinator {
	c := &Coordinator{cfg: cfg.withDefaults(), topics: topics, logs: map[int32]OffsetsLog{}, groups: map[string]*group{}, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.expireLoop()
	return c
}

// Close stops the session-expiry loop and waits for background writes.
func (c *Coordinator) Close() error {
	close(c.stop)
	c.wg.Wait()
	return nil
}

// Load makes this node the coordinator of one __consumer_offsets partition: it replays
// the partition into the group tables, then serves its groups.
func (c *Coordinator) Load(ctx context.Context, partition int32, log OffsetsLog) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.replay(ctx, partition, log); err != nil {
		return err
	}
	c.logs[partition] = log
	return nil
}

// Unload drops a partition's groups (its leadership moved).
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.logs, partition)
	for id, g := range c.groups {
		if g.partition == partition {
			c.failWaitersLocked(g, kerr.NotCoordinator.Code)
			delete(c.groups, id)
		}
	}
}

// IsLoaded reports whether this node coordinates a partition's groups.
func (c *Coordinator) IsLoaded(partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.logs[partition]
	return ok
}

// PartitionOf is where a group lives.
func (c *Coordinator) PartitionOf(groupID string) int32 {
	return PartitionFor(groupID, c.cfg.NumPartitions)
}

// groupLocked finds (or creates) a group.
func (c *Coordinator) groupLocked(id string, partition int32, create bool) *group {
	g, ok := c.groups[id]
	if !ok && create {
		g = newGroup(id, partition, c.cfg.Now())
		c.groups[id] = g
	}
	return g
}

// dropIfDeadLocked forgets a group with no members, no offsets and no generation.
func (c *Coordinator) dropIfDeadLocked(g *group) {
	if !g.hasMembers() && len(g.offsets) == 0 && len(g.pendingTxn) == 0 && g.state == stateEmpty {
		delete(c.groups, g.id)
	}
}

func (c *Coordinator) failWaitersLocked(g *group, code int16) {
	for _, m := range g.members {
		if m.join != nil {
			m.join <- joinResult{code: code, memberID: m.id}
			m.join = nil
		}
	}
	g.failSyncs(code)
	if g.joinDeadline != nil {
		g.joinDeadline.Stop()
	}
}

// Wait is an answer that is not ready yet; the broker turns it into a pending answer.
type Wait func(ctx context.Context) kmsg.Response

// Client is who sent a request, as DescribeGroups reports members.
type Client struct {
	ID, Host string
}

// Handle answers a group API request: at once, or through the returned Wait.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request, client Client) (kmsg.Response, Wait) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return c.join(r, client)
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(r)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return c.leave(r), nil
	case *kmsg.OffsetCommitRequest:
		return c.commit(r)
	case *kmsg.OffsetFetchRequest:
		return c.fetchOffsets(r), nil
	case *kmsg.DescribeGroupsRequest:
		return c.describe(r), nil
	case *kmsg.ListGroupsRequest:
		return c.list(r), nil
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(r)
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(r)
	case *kmsg.TxnOffsetCommitRequest:
		return c.txnCommit(r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return c.consumerHeartbeat(r, client), nil
	case *kmsg.ConsumerGroupDescribeRequest:
		return c.consumerDescribe(r), nil
	}
	return nil, nil
}

// SupportedVersions are the group APIs and versions this coordinator implements.
func (c *Coordinator) SupportedVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: int16(kmsg.OffsetCommit), MinVersion: 0, MaxVersion: 9},
		{ApiKey: int16(kmsg.OffsetFetch), MinVersion: 0, MaxVersion: 9},
		{ApiKey: int16(kmsg.JoinGroup), MinVersion: 0, MaxVersion: 9},
		{ApiKey: int16(kmsg.Heartbeat), MinVersion: 0, MaxVersion: 4},
		{ApiKey: int16(kmsg.LeaveGroup), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.SyncGroup), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.DescribeGroups), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.ListGroups), MinVersion: 0, MaxVersion: 5},
		{ApiKey: int16(kmsg.DeleteGroups), MinVersion: 0, MaxVersion: 2},
		{ApiKey: int16(kmsg.OffsetDelete), MinVersion: 0, MaxVersion: 0},
		{ApiKey: int16(kmsg.TxnOffsetCommit), MinVersion: 0, MaxVersion: 6},
		{ApiKey: int16(kmsg.ConsumerGroupHeartbeat), MinVersion: 0, MaxVersion: 1},
		{ApiKey: int16(kmsg.ConsumerGroupDescribe), MinVersion: 0, MaxVersion: 1},
	}
}

// CommittedOffsets is every loaded group's committed offsets: group -> topic -> partition.
func (c *Coordinator) CommittedOffsets() map[string]map[string]map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]map[int32]int64{}
	for id, g := range c.groups {
		for tp, o := range g.offsets {
			if out[id] == nil {
				out[id] = map[string]map[int32]int64{}
			}
			if out[id][tp.topic] == nil {
				out[id][tp.topic] = map[int32]int64{}
			}
			out[id][tp.topic][tp.partition] = o.offset
		}
	}
	return out
}

// expireLoop removes members whose session timed out.
func (c *Coordinator) expireLoop() {
	defer c.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	retention := time.NewTicker(c.cfg.RetentionCheck)
	defer retention.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-retention.C:
			c.expireOffsets()
			continue
		case <-t.C:
		}
		c.mu.Lock()
		now := c.cfg.Now()
		for _, g := range c.groups {
			if g.isConsumerGroup() {
				c.expireConsumersLocked(g, now)
				continue
			}
			expired := false
			for id, m := range g.members {
				if m.join == nil && m.sync == nil && now.Sub(m.lastHeard) > m.sessionTimeout {
					c.cfg.Logger.Info("group member session expired", "group", g.id, "member", id)
					delete(g.members, id)
					expired = true
				}
			}
			if expired {
				c.membersChangedLocked(g)
			}
		}
		c.mu.Unlock()
	}
}

// persistLocked writes records to the group's partition in the background; the group
// tables are already updated. Failures are logged: the next change writes the state again.
func (c *Coordinator) persistLocked(g *group, records []kv) {
	log, ok := c.logs[g.partition]
	if !ok {
		return
	}
	batch, err := encodeBatch(records, c.cfg.Now())
	if err != nil {
		c.cfg.Logger.Error("encoding group metadata", "group", g.id, "err", err)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := log.Append(ctx, batch); err != nil {
			c.cfg.Logger.Warn("writing group metadata", "group", g.id, "err", err)
		}
	}()
}

// expireOffsets drops committed offsets past offsets.retention.minutes (KIP-211): all of
// an empty group's offsets once it has been empty that long, and, for groups that only
// commit offsets and never join, each offset that long after its commit.
func (c *Coordinator) expireOffsets() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	for _, g := range c.groups {
		if g.state != stateEmpty || len(g.offsets) == 0 {
			continue
		}
		if _, ok := c.logs[g.partition]; !ok {
			continue
		}
		var records []kv
		for tp, o := range g.offsets {
			expired := now.Sub(g.stateSince) >= c.cfg.OffsetsRetention
			if g.protocolType == "" {
				expired = now.Sub(time.UnixMilli(o.timestamp)) >= c.cfg.OffsetsRetention
			}
			if expired {
				records = append(records, kv{key: offsetKey(g.id, tp.topic, tp.partition)})
				delete(g.offsets, tp)
			}
		}
		if len(records) > 0 {
			c.cfg.Logger.Info("expired committed offsets", "group", g.id, "partitions", len(records))
			c.persistLocked(g, records)
			c.dropIfDeadLocked(g)
		}
	}
}
