package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (c *Coordinator) join(r *kmsg.JoinGroupRequest, client Client) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	fail := func(code int16) (kmsg.Response, Wait) {
		resp.ErrorCode = code
		return resp, nil
	}
	session := time.Duration(r.SessionTimeoutMillis) * time.Millisecond
	rebalance := session
	if r.Version >= 1 {
		rebalance = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
	}
	switch {
	case r.Group == "":
		return fail(kerr.InvalidGroupID.Code)
	case session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	protos := make([]protocol, len(r.Protocols))
	for i, p := range r.Protocols {
		protos[i] = protocol{name: p.Name, metadata: p.Metadata}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	partition := c.PartitionOf(r.Group)
	if _, ok := c.logs[partition]; !ok {
		return fail(kerr.NotCoordinator.Code)
	}
	// Only a member without an id creates a group (Kafka's getOrMaybeCreateGroup).
	g := c.groupLocked(r.Group, partition, r.MemberID == "")
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	if g.isConsumerGroup() {
		if g.hasMembers() {
			// KIP-848 groups take members through ConsumerGroupHeartbeat only.
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
		g.consumer, g.protocolType, g.protocol = nil, "", ""
	}
	now := c.cfg.Now()
	instanceID := deref(r.InstanceID)
	memberID := r.MemberID
	static := g.staticMember(instanceID)
	switch {
	case static != nil && memberID == "":
		// KIP-345: a static member restarted. It takes its old seat under a new id.
		m := c.replaceStaticMemberLocked(g, static, newMemberID(client.ID))
		m.update(r, protos, client, session, rebalance, now)
		if g.state == stateStable && g.protocolType == r.ProtocolType && m.supports(g.protocol) && g.selectProtocol() == g.protocol {
			// Nothing the group agreed on changes: hand the seat back without a rebalance.
			c.persistLocked(g, []kv{{groupKey(g.id), g.metadataValue(now)}})
			resp.Generation, resp.LeaderID, resp.MemberID = g.generation, g.leader, m.id
			resp.Protocol, resp.ProtocolType = kmsg.StringPtr(g.protocol), kmsg.StringPtr(g.protocolType)
			if m.id == g.leader {
				resp.Members, resp.SkipAssignment = g.joinMembers(), true
			}
			return resp, nil
		}
		return c.awaitJoinLocked(g, m, r, resp)
	case static != nil && static.id != memberID:
		return fail(kerr.FencedInstanceID.Code)
	case memberID == "":
		memberID = newMemberID(client.ID)
		if instanceID == "" && r.Version >= 4 {
			// KIP-394: hand out the id first, so a client that never comes back leaves
			// nothing behind in the group.
			g.pending[memberID] = true
			resp.MemberID = memberID
			return fail(kerr.MemberIDRequired.Code)
		}
	case g.members[memberID] == nil && !g.pending[memberID]:
		return fail(kerr.UnknownMemberID.Code)
	}
	m := g.members[memberID]
	if !g.supportsProtocols(r.ProtocolType, protos) && !(m != nil && len(g.members) == 1) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if m != nil && m.join == nil && m.matches(r.ProtocolType, protos) &&
		(g.state == stateCompletingRebalance || g.state == stateStable && m.id != g.leader) {
		// A member that rejoins with nothing changed (it may have missed the answer to its
		// join) is told the current generation; only the leader's join in Stable, or a
		// change of metadata, starts a rebalance (Kafka's doCurrentMemberJoinGroup).
		resp.Generation, resp.LeaderID, resp.MemberID = g.generation, g.leader, m.id
		resp.Protocol, resp.ProtocolType = kmsg.StringPtr(g.protocol), kmsg.StringPtr(g.protocolType)
		if m.id == g.leader {
			resp.Members = g.joinMembers()
		}
		return resp, nil
	}
	if m == nil {
		if c.cfg.MaxGroupSize > 0 && len(g.members) >= c.cfg.MaxGroupSize {
			delete(g.pending, memberID)
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		m = &member{id: memberID}
		g.members[memberID] = m
	}
	delete(g.pending, memberID)
	if len(g.members) == 1 {
		g.protocolType = r.ProtocolType
	}
	m.update(r, protos, client, session, rebalance, now)
	return c.awaitJoinLocked(g, m, r, resp)
}

func (m *member) update(r *kmsg.JoinGroupRequest, protos []protocol, client Client, session, rebalance time.Duration, now time.Time) {
	m.instanceID, m.clientID, m.host, m.protocolType, m.protocols = deref(r.InstanceID), client.ID, client.Host, r.ProtocolType, protos
	m.sessionTimeout, m.rebalanceTimeout, m.lastHeard = session, rebalance, now
}

// replaceStaticMemberLocked moves a static member's seat (its assignment, its leadership)
// to a new member id; requests still waiting under the old id are fenced.
func (c *Coordinator) replaceStaticMemberLocked(g *group, old *member, id string) *member {
	c.removeMemberLocked(g, old, kerr.FencedInstanceID.Code)
	m := &member{id: id, instanceID: old.instanceID, assignment: old.assignment, protocols: old.protocols}
	g.members[id] = m
	if g.leader == old.id {
		g.leader = id
	}
	c.cfg.Logger.Info("static member rejoined", "group", g.id, "instance", old.instanceID, "old", old.id, "new", id)
	return m
}

// awaitJoinLocked parks a member's JoinGroup until the join phase ends, starting one if
// the group is not already rebalancing.
func (c *Coordinator) awaitJoinLocked(g *group, m *member, r *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) (kmsg.Response, Wait) {
	memberID := m.id
	if m.join != nil {
		m.join <- joinResult{code: kerr.RebalanceInProgress.Code, memberID: memberID}
	}
	ch := make(chan joinResult, 1)
	m.join = ch
	if g.state != statePreparingRebalance {
		c.prepareRebalanceLocked(g)
	}
	c.maybeCompleteJoinLocked(g)
	return nil, func(ctx context.Context) kmsg.Response {
		var res joinResult
		select {
		case res = <-ch:
		case <-ctx.Done():
			res = joinResult{code: kerr.RebalanceInProgress.Code, memberID: memberID}
		}
		resp.ErrorCode, resp.Generation, resp.LeaderID, resp.MemberID = res.code, res.generation, res.leader, res.memberID
		if res.code == 0 {
			resp.Protocol = kmsg.StringPtr(res.protocol)
			resp.ProtocolType = kmsg.StringPtr(r.ProtocolType)
			resp.Members = res.members
		} else {
			resp.Generation = -1
		}
		return resp
	}
}

// prepareRebalanceLocked starts a join phase: members have until the rebalance timeout to
// rejoin. A new group first waits the initial delay so that members starting together
// join one rebalance instead of many.
func (c *Coordinator) prepareRebalanceLocked(g *group) {
	c.cfg.Logger.Info("group rebalancing", "group", g.id, "state", g.state.String(), "members", len(g.members))
	if g.state == stateCompletingRebalance {
		g.failSyncs(kerr.RebalanceInProgress.Code)
	}
	wasEmpty := g.state == stateEmpty
	g.setState(statePreparingRebalance, c.cfg.Now())
	if g.joinDeadline != nil {
		g.joinDeadline.Stop()
	}
	delay := g.maxRebalanceTimeout()
	g.delaying = false
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		delay = min(delay, c.cfg.InitialRebalanceDelay)
		g.delaying = true
	}
	gen := g.generation
	g.joinDeadline = time.AfterFunc(delay, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.groups[g.id] != g || g.state != statePreparingRebalance || g.generation != gen {
			return
		}
		g.delaying = false
		c.completeJoinLocked(g)
	})
}

func (c *Coordinator) maybeCompleteJoinLocked(g *group) {
	if g.state == statePreparingRebalance && !g.delaying && g.allRejoined() {
		c.completeJoinLocked(g)
	}
}

// completeJoinLocked ends the join phase: members that did not rejoin are dropped, the
// generation moves on, and every waiting JoinGroup is answered (the leader with the members).
func (c *Coordinator) completeJoinLocked(g *group) {
	if g.joinDeadline != nil {
		g.joinDeadline.Stop()
	}
	now := c.cfg.Now()
	for id, m := range g.members {
		if m.join == nil {
			delete(g.members, id)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty, now)
		c.persistLocked(g, []kv{{groupKey(g.id), g.metadataValue(now)}})
		return
	}
	g.protocol = g.selectProtocol()
	if _, ok := g.members[g.leader]; !ok {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		g.leader = ids[0]
	}
	g.setState(stateCompletingRebalance, now)
	c.cfg.Logger.Info("group rebalanced", "group", g.id, "generation", g.generation, "members", len(g.members), "protocol", g.protocol)
	all := g.joinMembers()
	for _, m := range g.members {
		res := joinResult{generation: g.generation, protocol: g.protocol, leader: g.leader, memberID: m.id}
		if m.id == g.leader {
			res.members = all
		}
		m.join <- res
		m.join = nil
		m.lastHeard = now
	}
}

func (c *Coordinator) syncGroup(r *kmsg.SyncGroupRequest) (kmsg.Response, Wait) {
	resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.memberLocked(r.Group, r.MemberID, r.InstanceID, r.Generation)
	if code == 0 && m == nil {
		code = kerr.UnknownMemberID.Code // a classic request to a KIP-848 group
	}
	if code == 0 && r.ProtocolType != nil && *r.ProtocolType != g.protocolType ||
		code == 0 && r.Protocol != nil && *r.Protocol != g.protocol {
		code = kerr.InconsistentGroupProtocol.Code
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	m.lastHeard = c.cfg.Now()
	switch g.state {
	case statePreparingRebalance:
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp, nil
	case stateStable:
		resp.MemberAssignment = m.assignment
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
		return resp, nil
	}
	ch := make(chan syncResult, 1)
	m.sync = ch
	if m.id == g.leader {
		for _, mm := range g.members {
			mm.assignment = nil
		}
		for _, a := range r.GroupAssignment {
			if mm, ok := g.members[a.MemberID]; ok {
				mm.assignment = a.MemberAssignment
			}
		}
		now := c.cfg.Now()
		value := g.metadataValue(now)
		if len(value) > c.cfg.MaxRecordBytes {
			// The group could not be stored in __consumer_offsets. Kafka answers every
			// member UNKNOWN_SERVER_ERROR (its mapping of MESSAGE_TOO_LARGE) and rebalances.
			c.cfg.Logger.Warn("group metadata larger than a record of "+OffsetsTopic+" may be; rebalancing",
				"group", g.id, "bytes", len(value), "limit", c.cfg.MaxRecordBytes)
			for _, mm := range g.members {
				mm.assignment = nil
			}
			g.failSyncs(kerr.UnknownServerError.Code)
			c.prepareRebalanceLocked(g)
			resp.ErrorCode = kerr.UnknownServerError.Code
			return resp, nil
		}
		g.setState(stateStable, now)
		for _, mm := range g.members {
			if mm.sync != nil {
				mm.sync <- syncResult{assignment: mm.assignment}
				mm.sync = nil
			}
		}
		c.persistLocked(g, []kv{{groupKey(g.id), value}})
	}
	protocolType, proto := g.protocolType, g.protocol
	return nil, func(ctx context.Context) kmsg.Response {
		select {
		case res := <-ch:
			resp.ErrorCode, resp.MemberAssignment = res.code, res.assignment
		case <-ctx.Done():
			resp.ErrorCode = kerr.RebalanceInProgress.Code
		}
		if resp.ErrorCode == 0 {
			resp.ProtocolType, resp.Protocol = kmsg.StringPtr(protocolType), kmsg.StringPtr(proto)
		}
		return resp
	}
}

// memberLocked finds a member of a loaded group at the given generation. A consumer
// (KIP-848) group checks the member epoch instead and returns no classic member.
func (c *Coordinator) memberLocked(groupID, memberID string, instanceID *string, generation int32) (*group, *member, int16) {
	partition := c.PartitionOf(groupID)
	if _, ok := c.logs[partition]; !ok {
		return nil, nil, kerr.NotCoordinator.Code
	}
	g := c.groups[groupID]
	if g == nil {
		return nil, nil, kerr.UnknownMemberID.Code
	}
	if g.isConsumerGroup() {
		return g, nil, g.consumer.checkEpoch(memberID, generation)
	}
	if code := g.validateInstance(memberID, instanceID); code != 0 {
		return g, nil, code
	}
	m := g.members[memberID]
	switch {
	case m == nil:
		return g, nil, kerr.UnknownMemberID.Code
	case generation != g.generation:
		return g, m, kerr.IllegalGeneration.Code
	}
	return g, m, 0
}

func (c *Coordinator) heartbeat(r *kmsg.HeartbeatRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.memberLocked(r.Group, r.MemberID, r.InstanceID, r.Generation)
	if code == 0 && m == nil {
		code = kerr.UnknownMemberID.Code // a classic request to a KIP-848 group
	}
	if m != nil {
		m.lastHeard = c.cfg.Now()
	}
	if code == 0 && g.state == statePreparingRebalance {
		code = kerr.RebalanceInProgress.Code
	}
	resp.ErrorCode = code
	return resp
}

func (c *Coordinator) leave(r *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.logs[c.PartitionOf(r.Group)]; !ok {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	g := c.groups[r.Group]
	leaving := r.Members
	if r.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: r.MemberID}}
	}
	changed := false
	for _, l := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = l.MemberID, l.InstanceID
		// As Kafka's handleLeaveGroup: an empty member id with an instance id is an
		// administrator removing a static member; otherwise the member must be current.
		var m *member
		switch {
		case g == nil:
			rm.ErrorCode = kerr.UnknownMemberID.Code
		case l.MemberID == "":
			if m = g.staticMember(deref(l.InstanceID)); m == nil {
				rm.ErrorCode = kerr.UnknownMemberID.Code
			}
		case g.pending[l.MemberID]:
			delete(g.pending, l.MemberID)
		default:
			if rm.ErrorCode = g.validateInstance(l.MemberID, l.InstanceID); rm.ErrorCode == 0 {
				if m = g.members[l.MemberID]; m == nil {
					rm.ErrorCode = kerr.UnknownMemberID.Code
				}
			}
		}
		if m != nil {
			c.removeMemberLocked(g, m, kerr.UnknownMemberID.Code)
			changed = true
		}
		resp.Members = append(resp.Members, rm)
	}
	if r.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	if changed {
		c.membersChangedLocked(g)
	}
	return resp
}

// removeMemberLocked takes a member out, answering its waiting requests with code.
func (c *Coordinator) removeMemberLocked(g *group, m *member, code int16) {
	if m.join != nil {
		m.join <- joinResult{code: code, memberID: m.id}
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncResult{code: code}
		m.sync = nil
	}
	delete(g.members, m.id)
}

// membersChangedLocked reacts to members leaving or expiring.
func (c *Coordinator) membersChangedLocked(g *group) {
	now := c.cfg.Now()
	switch {
	case len(g.members) == 0 && g.state != statePreparingRebalance:
		if g.joinDeadline != nil {
			g.joinDeadline.Stop()
		}
		g.generation++
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty, now)
		c.persistLocked(g, []kv{{groupKey(g.id), g.metadataValue(now)}})
	case g.state == stateStable || g.state == stateCompletingRebalance:
		c.prepareRebalanceLocked(g)
	default:
		c.maybeCompleteJoinLocked(g)
	}
}
