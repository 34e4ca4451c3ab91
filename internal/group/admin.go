package group

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) describe(r *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range r.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		if _, ok := c.logs[c.PartitionOf(id)]; !ok {
			rg.ErrorCode = kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		g := c.groups[id]
		if g == nil {
			rg.State = "Dead"
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.ProtocolType, rg.Protocol = g.stateName(), g.protocolType, g.protocol
		if g.isConsumerGroup() {
			rg.Members = c.describeConsumers(g)
		}
		for _, m := range g.members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.id, m.clientID, m.host
			if m.instanceID != "" {
				rm.InstanceID = kmsg.StringPtr(m.instanceID)
			}
			rm.ProtocolMetadata, rm.MemberAssignment = m.metadataFor(g.protocol), m.assignment
			rg.Members = append(rg.Members, rm)
		}
		sort.Slice(rg.Members, func(i, j int) bool { return rg.Members[i].MemberID < rg.Members[j].MemberID })
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *Coordinator) list(r *kmsg.ListGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.groups {
		if _, ok := c.logs[g.partition]; !ok {
			continue
		}
		groupType := "classic"
		if g.isConsumerGroup() {
			groupType = "consumer"
		}
		if len(r.StatesFilter) > 0 && !containsFold(r.StatesFilter, g.stateName()) ||
			len(r.TypesFilter) > 0 && !containsFold(r.TypesFilter, groupType) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, g.protocolType, g.stateName(), groupType
		resp.Groups = append(resp.Groups, lg)
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}

func (c *Coordinator) deleteGroups(r *kmsg.DeleteGroupsRequest) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
	type deletion struct {
		index int
		log   OffsetsLog
		batch []byte
		group *group
	}
	var todo []deletion
	c.mu.Lock()
	for _, id := range r.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		log, loaded := c.logs[c.PartitionOf(id)]
		g := c.groups[id]
		switch {
		case !loaded:
			rg.ErrorCode = kerr.NotCoordinator.Code
		case g == nil:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		case g.hasMembers():
			rg.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			records := []kv{{key: groupKey(id)}}
			for tp := range g.offsets {
				records = append(records, kv{key: offsetKey(id, tp.topic, tp.partition)})
			}
			batch, err := encodeBatch(records, c.cfg.Now())
			if err != nil {
				rg.ErrorCode = kerr.UnknownServerError.Code
			} else {
				todo = append(todo, deletion{len(resp.Groups), log, batch, g})
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return resp, nil
	}
	return nil, func(ctx context.Context) kmsg.Response {
		for _, d := range todo {
			if _, err := d.log.Append(ctx, d.batch); err != nil {
				resp.Groups[d.index].ErrorCode = kerr.CoordinatorNotAvailable.Code
				continue
			}
			c.mu.Lock()
			if c.groups[d.group.id] == d.group && !d.group.hasMembers() {
				delete(c.groups, d.group.id)
			}
			c.mu.Unlock()
		}
		return resp
	}
}
