package group

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// newTestCoordinator is a coordinator over one real journal partition.
func newTestCoordinator(t *testing.T, topics fixedTopics, clock *fakeClock) *Coordinator {
	t.Helper()
	return newTestCoordinatorWith(t, topics, clock, nil)
}

// newTestCoordinatorWith is newTestCoordinator with changes to its config.
func newTestCoordinatorWith(t *testing.T, topics fixedTopics, clock *fakeClock, change func(*Config)) *Coordinator {
	t.Helper()
	cfg := journal.DefaultConfig()
	cfg.Logger = quiet()
	l, err := journal.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ccfg := Config{NumPartitions: 1, MinSessionTimeout: time.Second, InitialRebalanceDelay: -1, Logger: quiet(),
		ConsumerSessionTimeout: 10 * time.Second, Now: clock.Now}
	if change != nil {
		change(&ccfg)
	}
	c := NewCoordinator(ccfg, topics)
	t.Cleanup(func() { c.Close() })
	if err := c.Load(context.Background(), 0, journalLog{l}); err != nil {
		t.Fatal(err)
	}
	return c
}

// simMember is a KIP-848 client as the protocol expects one to behave: it reports what it
// owns, gives up revoked partitions at once, and takes what it is assigned.
type simMember struct {
	id, instance string
	topics       []string
	assignor     string
	epoch        int32
	owned        partitions
	joined       bool
}

func (s *simMember) heartbeat(t *testing.T, c *Coordinator) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.MemberEpoch = "g", s.id, s.epoch
	req.SubscribedTopicNames = s.topics
	req.RebalanceTimeoutMillis = 60000
	if s.assignor != "" {
		req.ServerAssignor = kmsg.StringPtr(s.assignor)
	}
	if s.instance != "" {
		req.InstanceID = kmsg.StringPtr(s.instance)
	}
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, topic := range sortedKeys(s.owned) {
		rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
		rt.TopicID, _ = fixedTopics{topic: 1}.TopicID(topic)
		rt.Partitions = s.owned[topic]
		req.Topics = append(req.Topics, rt)
	}
	resp, _ := c.Handle(context.Background(), req, Client{ID: "sim", Host: "/127.0.0.1"})
	r := resp.(*kmsg.ConsumerGroupHeartbeatResponse)
	if r.ErrorCode != 0 {
		return r
	}
	s.epoch, s.joined = r.MemberEpoch, true
	if r.Assignment != nil {
		s.owned = partitions{}
		for _, at := range r.Assignment.Topics {
			name := string(at.TopicID[:len(trimZeros(at.TopicID[:]))])
			s.owned[name] = slices.Clone(at.Partitions)
		}
	}
	return r
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// settle heartbeats every member in turn until nothing changes, checking after every
// heartbeat that no partition is owned by two members.
func settle(t *testing.T, c *Coordinator, members []*simMember) int {
	t.Helper()
	for round := 0; round < 20; round++ {
		changed := false
		for _, m := range members {
			before := fmt.Sprint(m.owned, m.epoch)
			if r := m.heartbeat(t, c); r.ErrorCode != 0 {
				t.Fatalf("member %s heartbeat: %v", m.id, kerr.ErrorForCode(r.ErrorCode))
			}
			changed = changed || before != fmt.Sprint(m.owned, m.epoch)
			checkNoDoubleOwnership(t, members)
		}
		if !changed {
			return round
		}
	}
	t.Fatal("group did not settle in 20 rounds")
	return 0
}

func checkNoDoubleOwnership(t *testing.T, members []*simMember) {
	t.Helper()
	owner := map[string]string{}
	for _, m := range members {
		for topic, ps := range m.owned {
			for _, p := range ps {
				k := fmt.Sprintf("%s-%d", topic, p)
				if o, ok := owner[k]; ok {
					t.Fatalf("partition %s owned by %s and %s at once", k, o, m.id)
				}
				owner[k] = m.id
			}
		}
	}
}

func counts(members []*simMember) []int {
	var out []int
	for _, m := range members {
		out = append(out, m.owned.count())
	}
	sort.Ints(out)
	return out
}

// TestConsumerGroupUniformRebalances: three members share 12 partitions 4/4/4; one leaves
// and the two that stay keep every partition they had; a new member joins and receives
// partitions only after others gave them up.
func TestConsumerGroupUniformRebalances(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 12}, clock)
	members := []*simMember{{id: "a", topics: []string{"t"}}, {id: "b", topics: []string{"t"}}, {id: "c", topics: []string{"t"}}}
	settle(t, c, members)
	if got := counts(members); !slices.Equal(got, []int{4, 4, 4}) {
		t.Fatalf("counts after three joined = %v, want 4/4/4", got)
	}
	// c leaves: a and b keep theirs and split c's.
	before := map[string]partitions{"a": members[0].owned, "b": members[1].owned}
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Group, leave.MemberID, leave.MemberEpoch = "g", "c", -1
	resp, _ := c.Handle(context.Background(), leave, Client{})
	if code := resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode; code != 0 {
		t.Fatalf("leave: %v", kerr.ErrorForCode(code))
	}
	members = members[:2]
	settle(t, c, members)
	if got := counts(members); !slices.Equal(got, []int{6, 6}) {
		t.Fatalf("counts after c left = %v, want 6/6", got)
	}
	for _, m := range members {
		if !before[m.id].subsetOf(m.owned) {
			t.Errorf("member %s lost partitions it kept: had %v, has %v", m.id, before[m.id], m.owned)
		}
	}
	// d joins: 4/4/4 again, with partitions moved only through revocation first.
	members = append(members, &simMember{id: "d", topics: []string{"t"}})
	settle(t, c, members)
	if got := counts(members); !slices.Equal(got, []int{4, 4, 4}) {
		t.Fatalf("counts after d joined = %v, want 4/4/4", got)
	}
	d := describeConsumerGroup(t, c)
	if d.State != "Stable" || len(d.Members) != 3 || d.AssignorName != "uniform" {
		t.Fatalf("described %s with %d members and assignor %s", d.State, len(d.Members), d.AssignorName)
	}
}

func describeConsumerGroup(t *testing.T, c *Coordinator) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{"g"}
	resp, _ := c.Handle(context.Background(), req, Client{})
	g := resp.(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
	if g.ErrorCode != 0 {
		t.Fatalf("describe: %v", kerr.ErrorForCode(g.ErrorCode))
	}
	return g
}

// TestConsumerGroupRangeAssignor: the range assignor gives co-partitioned topics the same
// partition numbers.
func TestConsumerGroupRangeAssignor(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"x": 5, "y": 5}, clock)
	members := []*simMember{{id: "a", topics: []string{"x", "y"}, assignor: "range"}, {id: "b", topics: []string{"x", "y"}, assignor: "range"}}
	settle(t, c, members)
	for _, m := range members {
		if !slices.Equal(m.owned["x"], m.owned["y"]) {
			t.Errorf("member %s owns x %v and y %v: not co-partitioned", m.id, m.owned["x"], m.owned["y"])
		}
	}
	if !slices.Equal(members[0].owned["x"], []int32{0, 1, 2}) || !slices.Equal(members[1].owned["x"], []int32{3, 4}) {
		t.Errorf("range split = %v / %v, want [0 1 2] / [3 4]", members[0].owned["x"], members[1].owned["x"])
	}
}

// TestConsumerGroupErrors covers KIP-848's error answers.
func TestConsumerGroupErrors(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 4}, clock)
	a := &simMember{id: "a", topics: []string{"t"}, instance: "i1"}
	settle(t, c, []*simMember{a})
	hb := func(mutate func(r *kmsg.ConsumerGroupHeartbeatRequest)) int16 {
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Version = 1
		r.Group, r.MemberID, r.MemberEpoch, r.RebalanceTimeoutMillis = "g", "z", 0, 1000
		r.SubscribedTopicNames = []string{"t"}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		mutate(r)
		resp, _ := c.Handle(context.Background(), r, Client{})
		return resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode
	}
	cases := []struct {
		name   string
		mutate func(r *kmsg.ConsumerGroupHeartbeatRequest)
		want   *kerr.Error
	}{
		{"no member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"epoch below -2", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -3 }, kerr.InvalidRequest},
		{"join without subscription", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = nil }, kerr.InvalidRequest},
		{"join owning partitions", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}
		}, kerr.InvalidRequest},
		// The rows below follow Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid.
		{"join with null owned partitions", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Topics = nil }, kerr.InvalidRequest},
		{"join without rebalance timeout", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.RebalanceTimeoutMillis = -1 }, kerr.InvalidRequest},
		{"empty rack", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.RackID = kmsg.StringPtr("") }, kerr.InvalidRequest},
		{"empty instance", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = kmsg.StringPtr("") }, kerr.InvalidRequest},
		{"static leave without instance", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -2 }, kerr.InvalidRequest},
		{"v0 leave without member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Version, r.MemberID, r.MemberEpoch = 0, "", -1 }, kerr.InvalidRequest},
		{"v0 static leave without member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Version, r.MemberID, r.MemberEpoch, r.InstanceID = 0, "", -2, kmsg.StringPtr("i9")
		}, kerr.UnknownMemberID},
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("magic") }, kerr.UnsupportedAssignor},
		{"bad regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("(") }, kerr.InvalidRegularExpression},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 3 }, kerr.UnknownMemberID},
		{"fenced epoch", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID, r.MemberEpoch = "a", a.epoch+5 }, kerr.FencedMemberEpoch},
		{"instance held", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.InstanceID = kmsg.StringPtr("i1") }, kerr.UnreleasedInstanceID},
		{"leave unknown", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -1 }, kerr.UnknownMemberID},
	}
	for _, tc := range cases {
		if got := hb(tc.mutate); got != tc.want.Code {
			t.Errorf("%s: got %v, want %v", tc.name, kerr.ErrorForCode(got), tc.want)
		}
	}
	// A commit at an old epoch is stale; at the member's epoch it lands.
	commit := func(epoch int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 9
		req.Group, req.MemberID, req.Generation = "g", "a", epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 7
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, wait := c.Handle(context.Background(), req, Client{})
		if wait != nil {
			resp = wait(context.Background())
		}
		return resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	if got := commit(a.epoch - 1); got != kerr.StaleMemberEpoch.Code {
		t.Errorf("commit at old epoch: %v, want STALE_MEMBER_EPOCH", kerr.ErrorForCode(got))
	}
	if got := commit(a.epoch); got != 0 {
		t.Errorf("commit at current epoch: %v", kerr.ErrorForCode(got))
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 9
	fg := kmsg.NewOffsetFetchRequestGroup()
	fg.Group, fg.MemberID, fg.MemberEpoch = "g", kmsg.StringPtr("a"), a.epoch-1
	fetch.Groups = append(fetch.Groups, fg)
	resp, _ := c.Handle(context.Background(), fetch, Client{})
	if code := resp.(*kmsg.OffsetFetchResponse).Groups[0].ErrorCode; code != kerr.StaleMemberEpoch.Code {
		t.Errorf("offset fetch at old epoch: %v, want STALE_MEMBER_EPOCH", kerr.ErrorForCode(code))
	}
	// A classic JoinGroup cannot enter a group with KIP-848 members.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 9
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	resp, _ = c.Handle(context.Background(), join, Client{})
	if code := resp.(*kmsg.JoinGroupResponse).ErrorCode; code != kerr.InconsistentGroupProtocol.Code {
		t.Errorf("classic join into a consumer group: %v, want INCONSISTENT_GROUP_PROTOCOL", kerr.ErrorForCode(code))
	}
}

// TestConsumerGroupStaticAndExpiry: a static member that leaves with epoch -2 and comes
// back under a new member id takes its old partitions without a new group epoch; a member
// that stops heartbeating is removed after the session timeout and its partitions move.
func TestConsumerGroupStaticAndExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 6}, clock)
	a := &simMember{id: "a1", topics: []string{"t"}, instance: "inst-a"}
	b := &simMember{id: "b", topics: []string{"t"}}
	settle(t, c, []*simMember{a, b})
	epochBefore := describeConsumerGroup(t, c).Epoch
	had := a.owned

	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Group, leave.MemberID, leave.MemberEpoch, leave.InstanceID = "g", "a1", -2, kmsg.StringPtr("inst-a")
	if resp, _ := c.Handle(context.Background(), leave, Client{}); resp.(*kmsg.ConsumerGroupHeartbeatResponse).MemberEpoch != -2 {
		t.Fatal("static leave not acknowledged with epoch -2")
	}
	back := &simMember{id: "a2", topics: []string{"t"}, instance: "inst-a"}
	settle(t, c, []*simMember{back, b})
	if !back.owned.equal(had) {
		t.Errorf("static member came back with %v, had %v", back.owned, had)
	}
	if e := describeConsumerGroup(t, c).Epoch; e != epochBefore {
		t.Errorf("group epoch moved from %d to %d on a static rejoin", epochBefore, e)
	}

	// b stops heartbeating: after the session timeout a2 owns everything.
	clock.Add(6 * time.Second)
	back.heartbeat(t, c)
	clock.Add(6 * time.Second)
	c.mu.Lock()
	c.expireConsumersLocked(c.groups["g"], clock.Now())
	c.mu.Unlock()
	settle(t, c, []*simMember{back})
	if back.owned.count() != 6 {
		t.Errorf("after b expired a2 owns %d partitions, want 6", back.owned.count())
	}
}

// TestConsumerGroupTopicGrows: adding partitions to a subscribed topic moves the group
// epoch and assigns them.
func TestConsumerGroupTopicGrows(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	topics := fixedTopics{"t": 2}
	c := newTestCoordinator(t, topics, clock)
	members := []*simMember{{id: "a", topics: []string{"t"}}, {id: "b", topics: []string{"t"}}}
	settle(t, c, members)
	topics["t"] = 6
	settle(t, c, members)
	if got := counts(members); !slices.Equal(got, []int{3, 3}) {
		t.Fatalf("after growing to 6 partitions: %v, want 3/3", got)
	}
}

// TestAssignUniformSticky checks the assignor alone over many shapes: every partition is
// assigned once, loads differ by at most one for equal subscriptions, and a member that
// stays keeps what it had whenever balance allows.
func TestAssignUniformSticky(t *testing.T) {
	for members := 1; members <= 7; members++ {
		for parts := int32(0); parts <= 20; parts += 3 {
			subs := map[string][]string{}
			for i := 0; i < members; i++ {
				subs[fmt.Sprint("m", i)] = []string{"t"}
			}
			first := assignUniform(subs, map[string]int32{"t": parts}, nil)
			checkAssignment(t, first, parts)
			// One member leaves: the others keep all they had.
			delete(subs, "m0")
			second := assignUniform(subs, map[string]int32{"t": parts}, first)
			if members > 1 {
				checkAssignment(t, second, parts)
			}
			for id := range subs {
				if !first[id].subsetOf(second[id]) {
					t.Errorf("%d members, %d partitions: %s had %v, now %v", members, parts, id, first[id], second[id])
				}
			}
		}
	}
}

func checkAssignment(t *testing.T, a map[string]partitions, parts int32) {
	t.Helper()
	seen := map[int32]bool{}
	lo, hi := int(parts)+1, -1
	for _, ps := range a {
		lo, hi = min(lo, ps.count()), max(hi, ps.count())
		for _, p := range ps["t"] {
			if seen[p] {
				t.Fatalf("partition %d assigned twice: %v", p, a)
			}
			seen[p] = true
		}
	}
	if int32(len(seen)) != parts || hi-lo > 1 {
		t.Fatalf("%d of %d partitions assigned, loads %d..%d: %v", len(seen), parts, lo, hi, a)
	}
}

// TestStaticMemberRejoinsWithoutRebalance (KIP-345, classic protocol): a static member
// that restarts and joins with an empty member id gets a new id, the same generation and
// its old assignment, with no rebalance; its old id is fenced.
func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 2}, clock)
	ctx := context.Background()
	call := func(req kmsg.Request) kmsg.Response {
		resp, wait := c.Handle(ctx, req, Client{ID: "cl", Host: "/127.0.0.1"})
		if wait != nil {
			resp = wait(ctx)
		}
		return resp
	}
	join := func(memberID string) *kmsg.JoinGroupResponse {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Version = 9
		r.Group, r.MemberID, r.InstanceID, r.ProtocolType = "s", memberID, kmsg.StringPtr("inst"), "consumer"
		r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 10000
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("m")}}
		return call(r).(*kmsg.JoinGroupResponse)
	}
	sync := func(memberID string, gen int32, assign []byte) *kmsg.SyncGroupResponse {
		r := kmsg.NewPtrSyncGroupRequest()
		r.Version = 5
		r.Group, r.MemberID, r.Generation, r.InstanceID = "s", memberID, gen, kmsg.StringPtr("inst")
		if assign != nil {
			r.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: memberID, MemberAssignment: assign}}
		}
		return call(r).(*kmsg.SyncGroupResponse)
	}
	first := join("")
	if first.ErrorCode != 0 {
		t.Fatalf("first join: %v", kerr.ErrorForCode(first.ErrorCode))
	}
	if s := sync(first.MemberID, first.Generation, []byte("mine")); s.ErrorCode != 0 || string(s.MemberAssignment) != "mine" {
		t.Fatalf("first sync: %v %q", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
	}
	again := join("")
	switch {
	case again.ErrorCode != 0:
		t.Fatalf("rejoin: %v", kerr.ErrorForCode(again.ErrorCode))
	case again.Generation != first.Generation:
		t.Errorf("rejoin moved the generation from %d to %d: a rebalance", first.Generation, again.Generation)
	case again.MemberID == first.MemberID:
		t.Errorf("rejoin kept member id %s", again.MemberID)
	case !again.SkipAssignment || again.LeaderID != again.MemberID:
		t.Errorf("rejoining leader: skip assignment %v, leader %s", again.SkipAssignment, again.LeaderID)
	}
	if s := sync(again.MemberID, again.Generation, nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "mine" {
		t.Errorf("sync after rejoin: %v %q, want the old assignment", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 4
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "s", first.MemberID, first.Generation, kmsg.StringPtr("inst")
	if code := call(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Errorf("heartbeat of the replaced member id: %v, want FENCED_INSTANCE_ID", kerr.ErrorForCode(code))
	}
	if code := join(first.MemberID).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Errorf("join with the replaced member id: %v, want FENCED_INSTANCE_ID", kerr.ErrorForCode(code))
	}
}

// TestOversizedGroupMetadata: an assignment too large to store in __consumer_offsets is
// refused with UNKNOWN_SERVER_ERROR (as Kafka maps MESSAGE_TOO_LARGE) and the group
// rebalances; offsets committed by another group are untouched.
func TestOversizedGroupMetadata(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 2}, clock)
	c.cfg.MaxRecordBytes = 4096
	ctx := context.Background()
	call := func(req kmsg.Request) kmsg.Response {
		resp, wait := c.Handle(ctx, req, Client{ID: "cl", Host: "/127.0.0.1"})
		if wait != nil {
			resp = wait(ctx)
		}
		return resp
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "other", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 42}}}}
	if code := call(commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(code))
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version = 9
	join.Group, join.InstanceID, join.ProtocolType = "big", kmsg.StringPtr("i"), "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("m")}}
	j := call(join).(*kmsg.JoinGroupResponse)
	if j.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(j.ErrorCode))
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "big", j.MemberID, j.Generation
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: j.MemberID, MemberAssignment: make([]byte, 8192)}}
	if code := call(sync).(*kmsg.SyncGroupResponse).ErrorCode; code != kerr.UnknownServerError.Code {
		t.Fatalf("oversized sync: %v, want UNKNOWN_SERVER_ERROR", kerr.ErrorForCode(code))
	}
	c.mu.Lock()
	state := c.groups["big"].state
	other := c.groups["other"].offsets[topicPartition{"t", 1}].offset
	c.mu.Unlock()
	if state != statePreparingRebalance || other != 42 {
		t.Errorf("after the oversized sync: group %v, other group's offset %d", state, other)
	}
}
