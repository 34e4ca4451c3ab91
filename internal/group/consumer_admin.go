package group

import (
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stateName is the state DescribeGroups and ListGroups report. A KIP-848 group is
// Reconciling while any member has not caught up with the target assignment.
func (g *group) stateName() string {
	if !g.isConsumerGroup() {
		return g.state.String()
	}
	cg := g.consumer
	if len(cg.members) == 0 {
		return "Empty"
	}
	for _, m := range cg.members {
		if m.epoch != cg.assignmentEpoch || m.phase != phaseStable {
			return "Reconciling"
		}
	}
	return "Stable"
}

func containsFold(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// describeConsumers shows KIP-848 members the way DescribeGroups shows classic consumer
// members: subscriptions and assignments in the consumer protocol's encoding, so tools
// that only know DescribeGroups (kcat, kadm, strand group describe) can read them.
func (c *Coordinator) describeConsumers(g *group) []kmsg.DescribeGroupsResponseGroupMember {
	var out []kmsg.DescribeGroupsResponseGroupMember
	for _, id := range sortedKeys(g.consumer.members) {
		m := g.consumer.members[id]
		rm := kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID, rm.ClientID, rm.ClientHost = m.id, m.clientID, m.host
		if m.instanceID != "" {
			rm.InstanceID = kmsg.StringPtr(m.instanceID)
		}
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = c.subscription(m)
		rm.ProtocolMetadata = meta.AppendTo(nil)
		assignment := kmsg.NewConsumerMemberAssignment()
		for _, t := range sortedKeys(m.assigned) {
			at := kmsg.NewConsumerMemberAssignmentTopic()
			at.Topic, at.Partitions = t, m.assigned[t]
			assignment.Topics = append(assignment.Topics, at)
		}
		rm.MemberAssignment = assignment.AppendTo(nil)
		out = append(out, rm)
	}
	return out
}

func (c *Coordinator) consumerDescribe(r *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range r.Groups {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group = id
		g := c.groups[id]
		switch {
		case !c.isLoadedLocked(id):
			rg.ErrorCode = kerr.NotCoordinator.Code
		case g == nil || !g.isConsumerGroup():
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			rg.ErrorMessage = kmsg.StringPtr("Group " + id + " is not a consumer group.")
		default:
			cg := g.consumer
			rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = g.stateName(), cg.epoch, cg.assignmentEpoch, g.protocol
			if rg.AssignorName == "" {
				rg.AssignorName = serverAssignors[0]
			}
			for _, mid := range sortedKeys(cg.members) {
				m := cg.members[mid]
				rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				rm.MemberID, rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.id, m.epoch, m.clientID, m.host
				if m.instanceID != "" {
					rm.InstanceID = kmsg.StringPtr(m.instanceID)
				}
				if m.rackID != "" {
					rm.RackID = kmsg.StringPtr(m.rackID)
				}
				rm.SubscribedTopics = m.subscribed
				if m.regex != nil {
					rm.SubscribedTopicRegex = kmsg.StringPtr(strings.TrimSuffix(strings.TrimPrefix(m.regex.String(), "^(?:"), ")$"))
				}
				rm.Assignment = c.describedAssignment(m.assigned)
				rm.TargetAssignment = c.describedAssignment(cg.target[m.id])
				rm.MemberType = 1 // consumer protocol
				rg.Members = append(rg.Members, rm)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *Coordinator) describedAssignment(ps partitions) kmsg.Assignment {
	var a kmsg.Assignment
	for _, t := range sortedKeys(ps) {
		id, _ := c.topics.TopicID(t)
		a.TopicPartitions = append(a.TopicPartitions, kmsg.AssignmentTopicPartition{TopicID: id, Topic: t, Partitions: ps[t]})
	}
	sort.Slice(a.TopicPartitions, func(i, j int) bool { return a.TopicPartitions[i].Topic < a.TopicPartitions[j].Topic })
	return a
}

func (c *Coordinator) isLoadedLocked(groupID string) bool {
	_, ok := c.logs[c.PartitionOf(groupID)]
	return ok
}
