package cluster

import (
	"context"
	"fmt"
	"maps"
	"math"
)

// Group config resources (DescribeConfigs / IncrementalAlterConfigs resource type 32, Kafka
// 4.0's GroupConfig in group-coordinator/…/GroupConfig.java): per-group overrides of the
// KIP-848 coordinator's session timeout and heartbeat interval. Kafka's share.* group configs
// are left out: Strand has no share groups.

// SourceDynamicGroup is DescribeConfigs' source for a group's own setting
// (GROUP_CONFIG).
const SourceDynamicGroup ConfigSource = 8

var groupDefs = []ConfigDef{
	{Name: "consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", BrokerSynonym: "group.consumer.heartbeat.interval.ms", Validate: intRange(1, math.MaxInt32),
		Doc: "How often members of this KIP-848 consumer group heartbeat."},
	{Name: "consumer.session.timeout.ms", Type: TypeInt, Default: "45000", BrokerSynonym: "group.consumer.session.timeout.ms", Validate: intRange(1, math.MaxInt32),
		Doc: "How long a member of this KIP-848 consumer group may go without a heartbeat."},
}

// GroupConfigDefs lists the group configs, sorted by name.
func GroupConfigDefs() []ConfigDef { return groupDefs }

// GroupConfigs are a group's own settings (nil when it has none). Never mutate the map.
func (s *State) GroupConfigs(group string) map[string]string { return s.Groups[group] }

type cmdGroupConfigs struct {
	Group string
	Ops   []ConfigOp
}

// AlterGroupConfigs applies incremental changes to a group's configs. check sees the
// group's settings as they would be after the change and may refuse them; it holds the
// checks that depend on this node's broker configs (Kafka's GroupConfig.validateValues).
func (n *Node) AlterGroupConfigs(ctx context.Context, group string, ops []ConfigOp, check func(map[string]string) error, validateOnly bool) error {
	if group == "" {
		return fmt.Errorf("%w: Group name must not be empty", ErrInvalidRequest)
	}
	next, err := applyConfigOps(groupDefs, n.State().Groups[group], ops)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(next); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if validateOnly {
		return nil
	}
	_, err = n.propose(ctx, "group-configs", cmdGroupConfigs{Group: group, Ops: ops})
	return err
}

func applyGroupConfigs(s *State, c cmdGroupConfigs) error {
	next, err := applyConfigOps(groupDefs, s.Groups[c.Group], c.Ops)
	if err != nil {
		return err
	}
	s.Groups = maps.Clone(s.Groups)
	if s.Groups == nil {
		s.Groups = map[string]map[string]string{}
	}
	if len(next) == 0 {
		delete(s.Groups, c.Group)
	} else {
		s.Groups[c.Group] = next
	}
	return nil
}
