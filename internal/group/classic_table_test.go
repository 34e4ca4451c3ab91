package group

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The classic group coordinator checked against Kafka's, one cell per (request, group
// state, member). The expected answers were read from Kafka's own coordinator:
//
//   - 3.x: core/src/main/scala/kafka/coordinator/group/GroupCoordinator.scala (handleJoinGroup,
//     doCurrentMemberJoinGroup, validateCurrentMember, handleSyncGroup, validateSyncGroup,
//     doSyncGroup, handleHeartbeat, validateHeartbeat, handleCommitOffsets,
//     validateOffsetCommit, doCommitOffsets, handleFetchOffsets, handleLeaveGroup);
//   - 4.x: group-coordinator/src/main/java/org/apache/kafka/coordinator/group/classic/
//     ClassicGroup.java (validateMember, validateOffsetCommit, validateOffsetFetch) and
//     OffsetMetadataManager.java (validateOffsetCommit: a commit to a group that does not
//     exist), which agree with 3.x on every cell below.
//
// Each cell holds the error code Kafka answers and the group state right after the request
// (before anything else happens): a request Kafka answers without rebalancing must not
// start a rebalance here either.

// Who sends the request.
const (
	asLeader   = iota // the group leader, at the group's generation
	asFollower        // another dynamic member, at the group's generation
	asStale           // the follower with the previous generation
	asUnknown         // a member id the group never handed out
	asStatic          // a static member (group.instance.id) with its member id, at the generation
	asFenced          // the static member's instance id with another member id (an old incarnation)
	numSenders
)

var senderNames = [numSenders]string{"leader", "follower", "stale", "unknown", "static", "fenced"}

// cell is what Kafka answers: the error code (for a request Kafka parks, the code it
// answers once the join or sync phase ends) and the group's state right after.
type cell struct {
	code  int16
	after state
}

// stateGone stands for Dead: Kafka's Dead group is one deleted (DeleteGroups) and removed
// from the coordinator, so each handler takes its "group not found" branch.
const stateGone = stateDead

var (
	none     = int16(0)
	unknown  = kerr.UnknownMemberID.Code
	illegal  = kerr.IllegalGeneration.Code
	rebal    = kerr.RebalanceInProgress.Code
	fenced   = kerr.FencedInstanceID.Code
	allCells = func(code int16, after state) [numSenders]cell {
		var out [numSenders]cell
		for i := range out {
			out[i] = cell{code, after}
		}
		return out
	}
)

type tableRow struct {
	api   string
	state state
	cells [numSenders]cell // by sender: leader, follower, stale, unknown, static, fenced
}

const (
	E = stateEmpty
	P = statePreparingRebalance
	C = stateCompletingRebalance
	S = stateStable
	D = stateGone
)

var classicTable = []tableRow{
	// JoinGroup (v9, the member's own id and protocols): handleJoinGroup → getOrMaybeCreateGroup
	// creates no group for a known member id (Dead: UNKNOWN_MEMBER_ID), then
	// doCurrentMemberJoinGroup → validateCurrentMember (instance id not found or member id
	// unknown: UNKNOWN_MEMBER_ID; instance id held by another member id: FENCED_INSTANCE_ID).
	// Empty: UNKNOWN_MEMBER_ID. PreparingRebalance: updateMemberAndRebalance (parked until the
	// join phase ends). CompletingRebalance: unchanged metadata is answered at once with the
	// current generation. Stable: the leader's join rebalances; a follower with unchanged
	// metadata is answered at once.
	{"JoinGroup", E, allCells(unknown, E)},
	{"JoinGroup", P, [numSenders]cell{{none, P}, {none, P}, {none, P}, {unknown, P}, {none, P}, {fenced, P}}},
	{"JoinGroup", C, [numSenders]cell{{none, C}, {none, C}, {none, C}, {unknown, C}, {none, C}, {fenced, C}}},
	{"JoinGroup", S, [numSenders]cell{{none, P}, {none, S}, {none, S}, {unknown, S}, {none, S}, {fenced, S}}},
	{"JoinGroup", D, allCells(unknown, D)},

	// SyncGroup (v5): handleSyncGroup (no group: UNKNOWN_MEMBER_ID) → validateSyncGroup
	// (validateCurrentMember, then a generation other than the group's: ILLEGAL_GENERATION)
	// → doSyncGroup: Empty UNKNOWN_MEMBER_ID, PreparingRebalance REBALANCE_IN_PROGRESS,
	// CompletingRebalance parks each member until the leader's assignment is stored (the
	// leader's own sync makes the group Stable), Stable answers the assignment.
	{"SyncGroup", E, allCells(unknown, E)},
	{"SyncGroup", P, [numSenders]cell{{rebal, P}, {rebal, P}, {illegal, P}, {unknown, P}, {rebal, P}, {fenced, P}}},
	{"SyncGroup", C, [numSenders]cell{{none, S}, {none, C}, {illegal, C}, {unknown, C}, {none, C}, {fenced, C}}},
	{"SyncGroup", S, [numSenders]cell{{none, S}, {none, S}, {illegal, S}, {unknown, S}, {none, S}, {fenced, S}}},
	{"SyncGroup", D, allCells(unknown, D)},

	// Heartbeat (v4): handleHeartbeat (no group: UNKNOWN_MEMBER_ID) → validateHeartbeat
	// (validateCurrentMember, then ILLEGAL_GENERATION); Empty UNKNOWN_MEMBER_ID,
	// PreparingRebalance REBALANCE_IN_PROGRESS, CompletingRebalance and Stable NONE.
	{"Heartbeat", E, allCells(unknown, E)},
	{"Heartbeat", P, [numSenders]cell{{rebal, P}, {rebal, P}, {illegal, P}, {unknown, P}, {rebal, P}, {fenced, P}}},
	{"Heartbeat", C, [numSenders]cell{{none, C}, {none, C}, {illegal, C}, {unknown, C}, {none, C}, {fenced, C}}},
	{"Heartbeat", S, [numSenders]cell{{none, S}, {none, S}, {illegal, S}, {unknown, S}, {none, S}, {fenced, S}}},
	{"Heartbeat", D, allCells(unknown, D)},

	// OffsetCommit (v8, generation >= 0): handleCommitOffsets: no group and generation >= 0
	// is ILLEGAL_GENERATION (4.x OffsetMetadataManager.validateOffsetCommit: the same below
	// v9). validateOffsetCommit: validateCurrentMember, then ILLEGAL_GENERATION; Empty has
	// no members (UNKNOWN_MEMBER_ID). doCommitOffsets: Stable and PreparingRebalance store
	// the offsets ("During PreparingRebalance phase, we still allow a commit request"),
	// CompletingRebalance answers REBALANCE_IN_PROGRESS.
	{"OffsetCommit", E, allCells(unknown, E)},
	{"OffsetCommit", P, [numSenders]cell{{none, P}, {none, P}, {illegal, P}, {unknown, P}, {none, P}, {fenced, P}}},
	{"OffsetCommit", C, [numSenders]cell{{rebal, C}, {rebal, C}, {illegal, C}, {unknown, C}, {rebal, C}, {fenced, C}}},
	{"OffsetCommit", S, [numSenders]cell{{none, S}, {none, S}, {illegal, S}, {unknown, S}, {none, S}, {fenced, S}}},
	{"OffsetCommit", D, allCells(illegal, D)},

	// OffsetFetch (v8): handleFetchOffsets returns offsets "blindly regardless the current
	// group state"; 4.x ClassicGroup.validateOffsetFetch refuses only a Dead group object,
	// which a deleted group no longer is.
	{"OffsetFetch", E, allCells(none, E)},
	{"OffsetFetch", P, allCells(none, P)},
	{"OffsetFetch", C, allCells(none, C)},
	{"OffsetFetch", S, allCells(none, S)},
	{"OffsetFetch", D, allCells(none, D)},

	// LeaveGroup (v5, one member with its id and instance id): handleLeaveGroup (no group:
	// the member UNKNOWN_MEMBER_ID) → validateCurrentMember (a known instance id under
	// another member id: FENCED_INSTANCE_ID, nothing removed) → removeMemberAndUpdateGroup:
	// Stable and CompletingRebalance start a rebalance, PreparingRebalance goes on waiting
	// for the members that have not rejoined. LeaveGroup carries no generation.
	{"LeaveGroup", E, allCells(unknown, E)},
	{"LeaveGroup", P, [numSenders]cell{{none, P}, {none, P}, {none, P}, {unknown, P}, {none, P}, {fenced, P}}},
	{"LeaveGroup", C, [numSenders]cell{{none, P}, {none, P}, {none, P}, {unknown, C}, {none, P}, {fenced, C}}},
	{"LeaveGroup", S, [numSenders]cell{{none, P}, {none, P}, {none, P}, {unknown, S}, {none, P}, {fenced, S}}},
	{"LeaveGroup", D, allCells(unknown, D)},
}

// classicFixture is one group driven by requests into a state.
type classicFixture struct {
	t                        *testing.T
	c                        *Coordinator
	leader, follower, static string // member ids
	generation               int32  // the group's generation
}

const tableGroup = "g"

func (f *classicFixture) handle(req kmsg.Request, client Client) (kmsg.Response, Wait) {
	return f.c.Handle(context.Background(), req, client)
}

func (f *classicFixture) await(w Wait) kmsg.Response {
	f.t.Helper()
	// A bound, not a timing assertion: a request still parked after this is answered
	// REBALANCE_IN_PROGRESS by the coordinator and the cell fails on that.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w(ctx)
}

func joinRequest(memberID string, instance string, meta []byte) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID, r.ProtocolType = tableGroup, memberID, "consumer"
	if instance != "" {
		r.InstanceID = kmsg.StringPtr(instance)
	}
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 30000, 300000
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
	return r
}

// joinDynamic is a KIP-394 dynamic member's first join: MEMBER_ID_REQUIRED, then the join
// with the id handed out, which parks.
func (f *classicFixture) joinDynamic(client Client, meta []byte) (string, Wait) {
	f.t.Helper()
	resp, wait := f.handle(joinRequest("", "", meta), client)
	jr, _ := resp.(*kmsg.JoinGroupResponse)
	if wait != nil || jr.ErrorCode != kerr.MemberIDRequired.Code {
		f.t.Fatalf("first join of %s: %v", client.ID, resp)
	}
	_, wait = f.handle(joinRequest(jr.MemberID, "", meta), client)
	if wait == nil {
		f.t.Fatalf("join of %s was not parked", client.ID)
	}
	return jr.MemberID, wait
}

// endJoinPhase does what the join phase's timer does when it fires.
func (f *classicFixture) endJoinPhase() {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	g := f.c.groups[tableGroup]
	if g == nil || g.state != statePreparingRebalance {
		f.t.Fatalf("ending a join phase of a group not rebalancing: %v", g)
	}
	g.delaying = false
	f.c.completeJoinLocked(g)
}

func (f *classicFixture) state() state {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	g := f.c.groups[tableGroup]
	if g == nil {
		return stateGone
	}
	return g.state
}

var (
	leaderClient   = Client{ID: "a-leader", Host: "/127.0.0.1"}
	followerClient = Client{ID: "b-follower", Host: "/127.0.0.1"}
	staticClient   = Client{ID: "c-static", Host: "/127.0.0.1"}
	newcomerClient = Client{ID: "d-newcomer", Host: "/127.0.0.1"}
)

const staticInstance = "static-1"

// newClassicFixture drives a fresh group into a state: three members (leader, follower,
// static) join one rebalance; Stable after the syncs; PreparingRebalance when a fourth
// member joins a Stable group; Empty when all three leave; Dead when the Empty group is
// then deleted.
func newClassicFixture(t *testing.T, want state) *classicFixture {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 1}, clock)
	// The first rebalance of an empty group waits its initial delay; the fixture ends it
	// itself once the three members have joined, so they join one generation.
	c.cfg.InitialRebalanceDelay = time.Hour
	f := &classicFixture{t: t, c: c}
	var waits []Wait
	var w Wait
	f.leader, w = f.joinDynamic(leaderClient, []byte("leader"))
	waits = append(waits, w)
	f.follower, w = f.joinDynamic(followerClient, []byte("follower"))
	waits = append(waits, w)
	if _, w = f.handle(joinRequest("", staticInstance, []byte("static")), staticClient); w == nil {
		t.Fatal("static join was not parked")
	}
	waits = append(waits, w)
	f.endJoinPhase()
	for _, w := range waits {
		jr := f.await(w).(*kmsg.JoinGroupResponse)
		if jr.ErrorCode != 0 {
			t.Fatalf("join: %v", kerr.ErrorForCode(jr.ErrorCode))
		}
		f.generation = jr.Generation
		if jr.LeaderID != f.leader {
			t.Fatalf("leader %s, want %s", jr.LeaderID, f.leader)
		}
		if jr.MemberID != f.leader && jr.MemberID != f.follower {
			f.static = jr.MemberID
		}
	}
	if want == stateCompletingRebalance {
		return f.check(want)
	}
	for _, m := range []string{f.leader, f.follower, f.static} {
		if code := f.sync(m, f.generation); code != 0 {
			t.Fatalf("sync of %s: %v", m, kerr.ErrorForCode(code))
		}
	}
	switch want {
	case statePreparingRebalance:
		f.joinDynamic(newcomerClient, []byte("newcomer"))
	case stateEmpty, stateGone:
		for _, m := range []string{f.leader, f.follower, f.static} {
			if code := f.leave(m); code != 0 {
				t.Fatalf("leave of %s: %v", m, kerr.ErrorForCode(code))
			}
		}
		c.mu.Lock()
		f.generation = c.groups[tableGroup].generation
		c.mu.Unlock()
		if want == stateGone {
			del := kmsg.NewPtrDeleteGroupsRequest()
			del.Groups = []string{tableGroup}
			resp, wait := f.handle(del, Client{})
			if wait != nil {
				resp = f.await(wait)
			}
			if code := resp.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode; code != 0 {
				t.Fatalf("delete: %v", kerr.ErrorForCode(code))
			}
		}
	}
	return f.check(want)
}

func (f *classicFixture) check(want state) *classicFixture {
	f.t.Helper()
	if got := f.state(); got != want {
		f.t.Fatalf("fixture reached %v, want %v", got, want)
	}
	return f
}

func (f *classicFixture) instanceOf(memberID string) *string {
	if memberID == f.static {
		return kmsg.StringPtr(staticInstance)
	}
	return nil
}

func (f *classicFixture) syncRequest(memberID string, generation int32) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation, r.InstanceID = tableGroup, memberID, generation, f.instanceOf(memberID)
	if memberID == f.leader {
		for _, m := range []string{f.leader, f.follower, f.static} {
			r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte("for " + m)})
		}
	}
	return r
}

// sync is a SyncGroup answered at once or after the leader's (sent first by the fixture).
func (f *classicFixture) sync(memberID string, generation int32) int16 {
	f.t.Helper()
	resp, wait := f.handle(f.syncRequest(memberID, generation), Client{})
	if wait != nil {
		resp = f.await(wait)
	}
	return resp.(*kmsg.SyncGroupResponse).ErrorCode
}

func (f *classicFixture) leave(memberID string) int16 {
	f.t.Helper()
	r := kmsg.NewPtrLeaveGroupRequest()
	r.Version = 5
	r.Group = tableGroup
	r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: memberID, InstanceID: f.instanceOf(memberID)}}
	resp, _ := f.handle(r, Client{})
	lr := resp.(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 {
		return lr.ErrorCode
	}
	return lr.Members[0].ErrorCode
}

// sender is who sends a cell's request: member id, instance id, generation, client and
// the protocol metadata it joined with.
func (f *classicFixture) sender(who int) (memberID string, instance *string, generation int32, client Client, meta []byte) {
	generation = f.generation
	switch who {
	case asLeader:
		return f.leader, nil, generation, leaderClient, []byte("leader")
	case asFollower:
		return f.follower, nil, generation, followerClient, []byte("follower")
	case asStale:
		return f.follower, nil, generation - 1, followerClient, []byte("follower")
	case asUnknown:
		return "x-unknown-member", nil, generation, followerClient, []byte("follower")
	case asStatic:
		return f.static, kmsg.StringPtr(staticInstance), generation, staticClient, []byte("static")
	default: // asFenced
		return staticInstance + "-old", kmsg.StringPtr(staticInstance), generation, staticClient, []byte("static")
	}
}

func (f *classicFixture) request(api string, who int) (kmsg.Request, Client) {
	memberID, instance, generation, client, meta := f.sender(who)
	switch api {
	case "JoinGroup":
		r := joinRequest(memberID, "", meta)
		r.InstanceID = instance
		return r, client
	case "SyncGroup":
		r := f.syncRequest(memberID, generation)
		r.InstanceID = instance
		return r, client
	case "Heartbeat":
		r := kmsg.NewPtrHeartbeatRequest()
		r.Version = 4
		r.Group, r.MemberID, r.Generation, r.InstanceID = tableGroup, memberID, generation, instance
		return r, client
	case "OffsetCommit":
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Version = 8
		r.Group, r.MemberID, r.Generation, r.InstanceID = tableGroup, memberID, generation, instance
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 17}}}}
		return r, client
	case "OffsetFetch":
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version = 8
		r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: tableGroup, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
		return r, client
	case "LeaveGroup":
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Version = 5
		r.Group = tableGroup
		r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: memberID, InstanceID: instance}}
		return r, client
	}
	panic(api)
}

func errorCode(resp kmsg.Response) int16 {
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		return r.ErrorCode
	case *kmsg.SyncGroupResponse:
		return r.ErrorCode
	case *kmsg.HeartbeatResponse:
		return r.ErrorCode
	case *kmsg.OffsetCommitResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.OffsetFetchResponse:
		return r.Groups[0].ErrorCode
	case *kmsg.LeaveGroupResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Members[0].ErrorCode
	}
	panic(fmt.Sprintf("%T", resp))
}

// settle moves a group on as its members and timers would, so that a parked request is
// answered: a join phase ends (its timer), and a waiting SyncGroup gets the leader's.
func (f *classicFixture) settle() {
	f.t.Helper()
	if f.state() == statePreparingRebalance {
		f.endJoinPhase()
	}
	f.c.mu.Lock()
	g := f.c.groups[tableGroup]
	syncing := false
	if g != nil && g.state == stateCompletingRebalance {
		for _, m := range g.members {
			syncing = syncing || m.sync != nil
		}
	}
	var leader string
	var generation int32
	if g != nil {
		leader, generation = g.leader, g.generation
	}
	f.c.mu.Unlock()
	if syncing && leader == f.leader {
		f.sync(f.leader, generation)
	}
}

// TestClassicCoordinatorMatchesKafka runs every cell of classicTable against a group driven
// into the cell's state.
func TestClassicCoordinatorMatchesKafka(t *testing.T) {
	cells, differ := 0, 0
	for _, row := range classicTable {
		for who := 0; who < numSenders; who++ {
			want := row.cells[who]
			cells++
			name := fmt.Sprintf("%s/%v/%s", row.api, row.state, senderNames[who])
			t.Run(name, func(t *testing.T) {
				f := newClassicFixture(t, row.state)
				req, client := f.request(row.api, who)
				resp, wait := f.handle(req, client)
				after := f.state()
				if wait != nil {
					f.settle()
					resp = f.await(wait)
				}
				if code := errorCode(resp); code != want.code || after != want.after {
					differ++
					t.Errorf("answered %v, group %v; Kafka answers %v, group %v",
						kerr.ErrorForCode(code), after, kerr.ErrorForCode(want.code), want.after)
				}
			})
		}
	}
	t.Logf("%d cells, %d differ from Kafka", cells, differ)
}
