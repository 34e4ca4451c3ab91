package group

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerGroup is the KIP-848 state of a group whose members speak
// ConsumerGroupHeartbeat: the coordinator, not a member, assigns partitions.
//
// Three epochs drive it. The group epoch moves whenever what the assignment depends on
// changes (members, subscriptions, the subscribed topics' partitions). The assignment
// epoch is the group epoch the target assignment was computed at. A member's epoch is the
// assignment epoch it has caught up with: a member moves to a new epoch only after it has
// given up every partition the target takes from it, and it receives a partition only
// once its previous owner has given it up, so no partition is ever owned twice.
type consumerGroup struct {
	epoch           int32
	assignmentEpoch int32
	members         map[string]*consumerMember
	target          map[string]partitions // member id -> target assignment
	topicsSeen      string                // the subscribed topics' metadata at the last epoch bump
}

// partitions is a set of partitions by topic name, each list sorted.
type partitions map[string][]int32

type memberPhase int

const (
	phaseStable     memberPhase = iota // owns its target (at its epoch)
	phaseUnrevoked                     // must give up partitions before it moves on
	phaseUnreleased                    // at the new epoch, waiting for others to release partitions
)

type consumerMember struct {
	id, instanceID, rackID, clientID, host string
	epoch, previousEpoch                   int32
	phase                                  memberPhase
	rebalanceTimeout                       time.Duration
	subscribed                             []string
	regex                                  *regexp.Regexp
	assignor                               string
	assigned, revoking                     partitions
	lastHeard                              time.Time
	revokingSince                          time.Time
	// staticLeft: a static member left with epoch -2, meaning it will be back; its seat
	// and partitions wait for its instance id until the session times out (KIP-345).
	staticLeft bool
}

// Server-side assignors (group.consumer.assignors); the first is the default.
var serverAssignors = []string{"uniform", "range"}

func (g *group) isConsumerGroup() bool { return g.consumer != nil }

// hasMembers reports whether anyone is in the group, under either protocol.
func (g *group) hasMembers() bool {
	if g.consumer != nil {
		return len(g.consumer.members) > 0
	}
	return len(g.members) > 0
}

// checkEpoch validates an offset commit or fetch made by a consumer group member.
func (cg *consumerGroup) checkEpoch(memberID string, epoch int32) int16 {
	m := cg.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case epoch < m.epoch:
		return kerr.StaleMemberEpoch.Code
	case epoch > m.epoch:
		return kerr.FencedMemberEpoch.Code
	}
	return 0
}

func (cg *consumerGroup) staticMember(instanceID string) *consumerMember {
	for _, m := range cg.members {
		if instanceID != "" && m.instanceID == instanceID {
			return m
		}
	}
	return nil
}

// validateConsumerHeartbeat checks a heartbeat's fields as Kafka's
// GroupMetadataManager.throwIfConsumerGroupHeartbeatRequestIsInvalid does, in its order:
// a member id is required from v1 on, and at any version to heartbeat (epoch > 0) or
// leave (-1); a static member's leave (-2) needs its instance id; a (re)join (epoch 0)
// carries a rebalance timeout, an empty owned-partitions list and a subscription.
func validateConsumerHeartbeat(r *kmsg.ConsumerGroupHeartbeatRequest) string {
	switch {
	case r.MemberID == "" && (r.Version >= 1 || r.MemberEpoch > 0 || r.MemberEpoch == -1):
		return "MemberId can't be empty."
	case r.Group == "":
		return "GroupId can't be empty."
	case r.InstanceID != nil && *r.InstanceID == "":
		return "InstanceId can't be empty."
	case r.RackID != nil && *r.RackID == "":
		return "RackId can't be empty."
	case r.MemberEpoch == 0 && r.RebalanceTimeoutMillis == -1:
		return "RebalanceTimeoutMs must be provided in first request."
	case r.MemberEpoch == 0 && (r.Topics == nil || len(r.Topics) > 0):
		return "TopicPartitions must be empty when (re-)joining."
	case r.MemberEpoch == 0 && r.SubscribedTopicNames == nil && r.SubscribedTopicRegex == nil:
		return "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."
	case r.MemberEpoch == -2 && r.InstanceID == nil:
		return "InstanceId can't be null."
	case r.MemberEpoch < -2:
		return "MemberEpoch is invalid."
	}
	return ""
}

// isFullRequest reports whether a heartbeat carries everything a member knows: a
// (re)join, or a heartbeat with its rebalance timeout, subscription and owned partitions.
// Clients send one after an error or when they need the assignment again (franz-go does
// when a topic it purged is subscribed anew while still assigned to it), and Kafka answers
// every full request with the member's whole assignment (GroupMetadataManager
// consumerGroupHeartbeat: "The assignment is only provided in the following cases: 1. The
// member sent a full request ... 2. The member's assignment has been updated").
func isFullRequest(r *kmsg.ConsumerGroupHeartbeatRequest) bool {
	return r.MemberEpoch == 0 || r.RebalanceTimeoutMillis != -1 &&
		(r.SubscribedTopicNames != nil || r.SubscribedTopicRegex != nil) && r.Topics != nil
}

func (c *Coordinator) consumerHeartbeat(r *kmsg.ConsumerGroupHeartbeatRequest, client Client) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(code int16, msg string) kmsg.Response {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = kmsg.StringPtr(msg)
		}
		return resp
	}
	if msg := validateConsumerHeartbeat(r); msg != "" {
		return fail(kerr.InvalidRequest.Code, msg)
	}
	if r.ServerAssignor != nil && !contains(serverAssignors, *r.ServerAssignor) {
		return fail(kerr.UnsupportedAssignor.Code, "Assignor "+*r.ServerAssignor+" is not supported; supported: "+strings.Join(serverAssignors, ", "))
	}
	var regex *regexp.Regexp
	if r.SubscribedTopicRegex != nil && *r.SubscribedTopicRegex != "" {
		var err error
		if regex, err = regexp.Compile("^(?:" + *r.SubscribedTopicRegex + ")$"); err != nil {
			return fail(kerr.InvalidRegularExpression.Code, err.Error())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	partition := c.PartitionOf(r.Group)
	if _, ok := c.logs[partition]; !ok {
		return fail(kerr.NotCoordinator.Code, "")
	}
	g := c.groups[r.Group]
	if g == nil && r.MemberEpoch != 0 {
		return fail(kerr.UnknownMemberID.Code, "")
	}
	if g == nil {
		g = c.groupLocked(r.Group, partition, true)
	}
	if !g.isConsumerGroup() {
		if len(g.members) > 0 || len(g.pending) > 0 {
			return fail(kerr.GroupIDNotFound.Code, "Group "+r.Group+" is not a consumer group.")
		}
		g.consumer = &consumerGroup{members: map[string]*consumerMember{}, target: map[string]partitions{}}
		g.protocolType, g.protocol, g.leader = "consumer", "", ""
	}
	cg := g.consumer
	now := c.cfg.Now()
	if r.MemberEpoch < 0 {
		return c.consumerLeaveLocked(g, r, resp)
	}

	m := cg.members[r.MemberID]
	instanceID := deref(r.InstanceID)
	if r.MemberEpoch == 0 {
		memberID := r.MemberID
		if memberID == "" { // v0: the coordinator names the member
			memberID = newMemberID(client.ID)
		}
		if m == nil {
			if old := cg.staticMember(instanceID); old != nil {
				if !old.staticLeft {
					return fail(kerr.UnreleasedInstanceID.Code, "Static member with instance id "+instanceID+" is still in the group.")
				}
				m = cg.takeSeat(old, memberID)
			}
		}
		if m == nil {
			if c.cfg.MaxConsumerGroupSize > 0 && len(cg.members) >= c.cfg.MaxConsumerGroupSize {
				return fail(kerr.GroupMaxSizeReached.Code, "")
			}
			m = &consumerMember{id: memberID, assigned: partitions{}, assignor: serverAssignors[0]}
			cg.members[memberID] = m
			cg.epoch++
			g.setState(stateStable, now)
			c.cfg.Logger.Info("consumer group member joined", "group", g.id, "member", memberID, "group_epoch", cg.epoch)
		}
	} else {
		switch {
		case m == nil:
			return fail(kerr.UnknownMemberID.Code, "")
		case instanceID != "" && m.instanceID != instanceID:
			return fail(kerr.FencedInstanceID.Code, "")
		case r.MemberEpoch != m.epoch && !(r.MemberEpoch == m.previousEpoch && r.Topics != nil && c.ownedFrom(r.Topics).subsetOf(m.assigned)):
			return fail(kerr.FencedMemberEpoch.Code, "")
		}
	}
	if m.update(r, regex, client) {
		cg.epoch++
	}
	m.lastHeard, m.staticLeft = now, false

	c.refreshTargetLocked(g)
	var owned partitions
	if r.Topics != nil {
		owned = c.ownedFrom(r.Topics)
	}
	changed := cg.reconcile(m, owned, now)
	resp.MemberID, resp.MemberEpoch = kmsg.StringPtr(m.id), m.epoch
	resp.HeartbeatIntervalMillis = int32(c.consumerHeartbeatInterval(g.id).Milliseconds())
	if isFullRequest(r) || changed || owned != nil && !owned.equal(m.assigned) {
		resp.Assignment = c.assignmentOf(m.assigned)
	}
	return resp
}

// update applies a heartbeat's fields (null means unchanged) and reports whether the
// subscription changed, which moves the group epoch.
func (m *consumerMember) update(r *kmsg.ConsumerGroupHeartbeatRequest, regex *regexp.Regexp, client Client) bool {
	changed := false
	if r.SubscribedTopicNames != nil {
		names := slices.Clone(r.SubscribedTopicNames)
		sort.Strings(names)
		names = slices.Compact(names)
		changed = changed || !slices.Equal(names, m.subscribed)
		m.subscribed = names
	}
	if r.SubscribedTopicRegex != nil {
		changed = changed || regexString(regex) != regexString(m.regex)
		m.regex = regex
	}
	if r.ServerAssignor != nil && *r.ServerAssignor != m.assignor {
		m.assignor, changed = *r.ServerAssignor, true
	}
	if r.RebalanceTimeoutMillis >= 0 {
		m.rebalanceTimeout = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
	}
	if r.InstanceID != nil {
		m.instanceID = *r.InstanceID
	}
	if r.RackID != nil {
		m.rackID = *r.RackID
	}
	m.clientID, m.host = client.ID, client.Host
	return changed
}

func regexString(r *regexp.Regexp) string {
	if r == nil {
		return ""
	}
	return r.String()
}

// takeSeat gives a returning static member the seat its instance left: its epoch and
// partitions, so the group needs no rebalance (KIP-345 under KIP-848).
func (cg *consumerGroup) takeSeat(old *consumerMember, id string) *consumerMember {
	m := *old
	m.id, m.staticLeft = id, false
	delete(cg.members, old.id)
	cg.members[id] = &m
	cg.target[id] = cg.target[old.id]
	delete(cg.target, old.id)
	return &m
}

func (c *Coordinator) consumerLeaveLocked(g *group, r *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) kmsg.Response {
	m := g.consumer.members[r.MemberID]
	if m == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp
	}
	resp.MemberID, resp.MemberEpoch = kmsg.StringPtr(m.id), r.MemberEpoch
	if r.MemberEpoch == -2 && m.instanceID != "" {
		m.staticLeft, m.lastHeard = true, c.cfg.Now()
		return resp
	}
	c.removeConsumerMemberLocked(g, m, "left the group")
	return resp
}

func (c *Coordinator) removeConsumerMemberLocked(g *group, m *consumerMember, why string) {
	cg := g.consumer
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	cg.epoch++
	c.cfg.Logger.Info("consumer group member removed", "group", g.id, "member", m.id, "why", why, "group_epoch", cg.epoch)
	if len(cg.members) == 0 {
		g.setState(stateEmpty, c.cfg.Now())
	}
}

// expireConsumersLocked removes members whose session timed out and members that did
// not give up their revoked partitions within their rebalance timeout.
func (c *Coordinator) expireConsumersLocked(g *group, now time.Time) {
	for _, m := range g.consumer.members {
		switch {
		case now.Sub(m.lastHeard) > c.consumerSessionTimeout(g.id):
			c.removeConsumerMemberLocked(g, m, "session expired")
		case m.phase == phaseUnrevoked && m.rebalanceTimeout > 0 && now.Sub(m.revokingSince) > m.rebalanceTimeout:
			c.removeConsumerMemberLocked(g, m, "did not revoke partitions within its rebalance timeout")
		}
	}
}

// subscription is the topics a member is subscribed to that exist now.
func (c *Coordinator) subscription(m *consumerMember) []string {
	var out []string
	for _, t := range m.subscribed {
		if _, ok := c.topics.PartitionCount(t); ok {
			out = append(out, t)
		}
	}
	if m.regex != nil {
		for _, t := range c.topics.TopicNames() {
			if !strings.HasPrefix(t, "__") && m.regex.MatchString(t) && !contains(out, t) {
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// refreshTargetLocked moves the group epoch when a subscribed topic appeared, vanished or
// grew, and recomputes the target assignment when the group epoch has moved past it.
func (c *Coordinator) refreshTargetLocked(g *group) {
	cg := g.consumer
	subs := map[string][]string{}
	counts := map[string]int32{}
	var seen strings.Builder
	votes := map[string]int{}
	for _, id := range sortedKeys(cg.members) {
		m := cg.members[id]
		subs[id] = c.subscription(m)
		votes[m.assignor]++
		for _, t := range subs[id] {
			if _, ok := counts[t]; !ok {
				counts[t], _ = c.topics.PartitionCount(t)
			}
		}
	}
	for _, t := range sortedKeys(counts) {
		id, _ := c.topics.TopicID(t)
		fmt.Fprintf(&seen, "%s/%x/%d;", t, id, counts[t])
	}
	if seen.String() != cg.topicsSeen {
		cg.topicsSeen = seen.String()
		cg.epoch++
	}
	if cg.epoch == cg.assignmentEpoch {
		return
	}
	assignor := serverAssignors[0]
	for _, a := range serverAssignors {
		if votes[a] > votes[assignor] {
			assignor = a
		}
	}
	g.protocol = assignor
	if assignor == "range" {
		cg.target = assignRange(subs, counts)
	} else {
		cg.target = assignUniform(subs, counts, cg.target)
	}
	cg.assignmentEpoch = cg.epoch
	c.cfg.Logger.Info("consumer group target assignment", "group", g.id, "epoch", cg.epoch, "members", len(cg.members), "assignor", assignor)
}

// reconcile moves a member one step toward its target and reports whether what it owns
// changed. owned is what the member says it owns (nil: unchanged since its last report).
func (cg *consumerGroup) reconcile(m *consumerMember, owned partitions, now time.Time) bool {
	before := m.assigned
	if m.phase == phaseUnrevoked {
		if owned == nil || owned.intersects(m.revoking) {
			return false
		}
		m.revoking, m.phase = nil, phaseStable
	}
	if m.epoch == cg.assignmentEpoch && m.phase == phaseStable {
		return false
	}
	target := cg.target[m.id]
	keep, revoke := m.assigned.split(target)
	if len(revoke) > 0 && (owned == nil || owned.intersects(revoke)) {
		m.assigned, m.revoking, m.phase, m.revokingSince = keep, revoke, phaseUnrevoked, now
		return true
	}
	_, missing := target.split(keep)
	free := partitions{}
	unreleased := false
	for t, ps := range missing {
		for _, p := range ps {
			if cg.heldByOther(m.id, t, p) {
				unreleased = true
				continue
			}
			free[t] = append(free[t], p)
		}
	}
	m.assigned = keep.union(free)
	if m.epoch != cg.assignmentEpoch {
		m.previousEpoch, m.epoch = m.epoch, cg.assignmentEpoch
	}
	m.phase = phaseStable
	if unreleased {
		m.phase = phaseUnreleased
	}
	return !m.assigned.equal(before)
}

// heldByOther reports whether another member still owns or is giving up a partition.
func (cg *consumerGroup) heldByOther(id, topic string, p int32) bool {
	for _, o := range cg.members {
		if o.id != id && (o.assigned.has(topic, p) || o.revoking.has(topic, p)) {
			return true
		}
	}
	return false
}

// ownedFrom reads a heartbeat's owned partitions; topics that no longer exist are dropped.
func (c *Coordinator) ownedFrom(topics []kmsg.ConsumerGroupHeartbeatRequestTopic) partitions {
	out := partitions{}
	for _, t := range topics {
		name, ok := c.topics.TopicName(t.TopicID)
		if !ok || len(t.Partitions) == 0 {
			continue
		}
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		out[name] = slices.Compact(ps)
	}
	return out
}

func (c *Coordinator) assignmentOf(ps partitions) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, t := range sortedKeys(ps) {
		id, ok := c.topics.TopicID(t)
		if !ok {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = id, slices.Clone(ps[t])
		a.Topics = append(a.Topics, at)
	}
	return &a
}

func (ps partitions) has(topic string, p int32) bool {
	_, ok := slices.BinarySearch(ps[topic], p)
	return ok
}

func (ps partitions) count() int {
	n := 0
	for _, l := range ps {
		n += len(l)
	}
	return n
}

// split returns what of ps is in other and what is not.
func (ps partitions) split(other partitions) (in, out partitions) {
	in, out = partitions{}, partitions{}
	for t, l := range ps {
		for _, p := range l {
			if other.has(t, p) {
				in[t] = append(in[t], p)
			} else {
				out[t] = append(out[t], p)
			}
		}
	}
	return in, out
}

func (ps partitions) union(other partitions) partitions {
	out := partitions{}
	for _, src := range []partitions{ps, other} {
		for t, l := range src {
			out[t] = append(out[t], l...)
		}
	}
	for t := range out {
		slices.Sort(out[t])
		out[t] = slices.Compact(out[t])
	}
	return out
}

func (ps partitions) intersects(other partitions) bool {
	for t, l := range ps {
		for _, p := range l {
			if other.has(t, p) {
				return true
			}
		}
	}
	return false
}

func (ps partitions) subsetOf(other partitions) bool {
	for t, l := range ps {
		for _, p := range l {
			if !other.has(t, p) {
				return false
			}
		}
	}
	return true
}

func (ps partitions) equal(other partitions) bool {
	return ps.count() == other.count() && ps.subsetOf(other)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
