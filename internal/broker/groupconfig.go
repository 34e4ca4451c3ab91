package broker

import (
	"fmt"
	"strconv"
	"time"

	"github.com/strand-data/strand/internal/cluster"
)

// resourceGroup is the group config resource type of DescribeConfigs and
// IncrementalAlterConfigs (Kafka 4.0, ConfigResource.Type.GROUP).
const resourceGroup = 32

// groupConfig is a group config's effective value: the group's own setting, else the
// node's value of the broker config it overrides, reported as the default.
func (b *Broker) groupConfig(s *cluster.State, group string, def cluster.ConfigDef) (string, cluster.ConfigSource, bool) {
	if v, ok := s.GroupConfigs(group)[def.Name]; ok {
		return v, cluster.SourceDynamicGroup, true
	}
	v, _, _ := b.brokerConfig(s, def.BrokerSynonym)
	return v, cluster.SourceDefault, true
}

// groupConfigMs is a group config in milliseconds: set in configs, else the node's default.
func (b *Broker) groupConfigMs(s *cluster.State, configs map[string]string, name string) int64 {
	if v, ok := configs[name]; ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	for _, def := range cluster.GroupConfigDefs() {
		if def.Name == name {
			return b.brokerConfigInt(s, def.BrokerSynonym)
		}
	}
	return 0
}

// checkGroupConfigs refuses group settings outside this node's bounds, as Kafka's
// GroupConfig.validateValues does (group-coordinator/…/GroupConfig.java), with its words.
func (b *Broker) checkGroupConfigs(configs map[string]string) error {
	s := b.meta.State()
	heartbeat := b.groupConfigMs(s, configs, "consumer.heartbeat.interval.ms")
	session := b.groupConfigMs(s, configs, "consumer.session.timeout.ms")
	bound := func(name string) int64 { return b.brokerConfigInt(s, name) }
	switch {
	case heartbeat < bound("group.consumer.min.heartbeat.interval.ms"):
		return fmt.Errorf("consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms")
	case heartbeat > bound("group.consumer.max.heartbeat.interval.ms"):
		return fmt.Errorf("consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms")
	case session < bound("group.consumer.min.session.timeout.ms"):
		return fmt.Errorf("consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms")
	case session > bound("group.consumer.max.session.timeout.ms"):
		return fmt.Errorf("consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms")
	case session <= heartbeat:
		return fmt.Errorf("consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms")
	}
	return nil
}

// consumerGroupConfig is the group coordinator's hook (group.Config.ConsumerGroupConfig):
// a KIP-848 group's own session timeout and heartbeat interval, zero where it has none.
func (b *Broker) consumerGroupConfig(groupID string) (sessionTimeout, heartbeatInterval time.Duration) {
	configs := b.meta.State().GroupConfigs(groupID)
	ms := func(name string) time.Duration {
		n, err := strconv.ParseInt(configs[name], 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	return ms("consumer.session.timeout.ms"), ms("consumer.heartbeat.interval.ms")
}
