package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitAs sends one OffsetCommit of t/0 and returns its error code.
func commitAs(t *testing.T, c *Coordinator, version int16, group, memberID string, generation int32, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = version
	req.Group, req.MemberID, req.Generation = group, memberID, generation
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset}}}}
	resp, wait := c.Handle(context.Background(), req, Client{})
	if wait != nil {
		resp = wait(context.Background())
	}
	return resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// committedOffset is t/0's committed offset in a group, -1 when none.
func committedOffset(c *Coordinator, group string) int64 {
	if o, ok := c.CommittedOffsets()[group]["t"][0]; ok {
		return o
	}
	return -1
}

// TestCommitWhileRebalancing (issue 18, item 1): a member of the current generation that
// commits while its group is PreparingRebalance (in its revoke callback, before it
// rejoins) has the commit stored, as Kafka's doCommitOffsets does ("During
// PreparingRebalance phase, we still allow a commit request"); the same member commits
// nothing while its group is CompletingRebalance (REBALANCE_IN_PROGRESS) and commits again
// once the group is Stable.
func TestCommitWhileRebalancing(t *testing.T) {
	f := newClassicFixture(t, statePreparingRebalance)
	if code := commitAs(t, f.c, 8, tableGroup, f.follower, f.generation, 100); code != 0 {
		t.Fatalf("commit while PreparingRebalance: %v", kerr.ErrorForCode(code))
	}
	if got := committedOffset(f.c, tableGroup); got != 100 {
		t.Fatalf("committed offset %d after the commit while PreparingRebalance, want 100", got)
	}

	f = newClassicFixture(t, stateCompletingRebalance)
	if code := commitAs(t, f.c, 8, tableGroup, f.follower, f.generation, 200); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit while CompletingRebalance: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
	}
	if got := committedOffset(f.c, tableGroup); got != -1 {
		t.Fatalf("a refused commit stored offset %d", got)
	}
	for _, m := range []string{f.leader, f.follower, f.static} {
		if code := f.sync(m, f.generation); code != 0 {
			t.Fatalf("sync: %v", kerr.ErrorForCode(code))
		}
	}
	if code := commitAs(t, f.c, 8, tableGroup, f.follower, f.generation, 300); code != 0 || committedOffset(f.c, tableGroup) != 300 {
		t.Fatalf("commit once Stable: %v, offset %d", kerr.ErrorForCode(code), committedOffset(f.c, tableGroup))
	}
}

// TestCommitFromOutsideTheGroup (issue 18, items 6.2 and 6.3): commits with generation -1
// come from consumers that do not use group management. Kafka (3.x GroupCoordinator
// handleCommitOffsets/validateOffsetCommit; 4.x OffsetMetadataManager.validateOffsetCommit,
// ClassicGroup.validateOffsetCommit, ConsumerGroup.validateOffsetCommit) takes them into a
// group that does not exist or has no members, whatever member id they carry (a KIP-848
// librdkafka assign() consumer sends its own), and refuses them with UNKNOWN_MEMBER_ID
// when the group has members. A generation >= 0 to a group that does not exist is
// ILLEGAL_GENERATION below OffsetCommit v9 and GROUP_ID_NOT_FOUND from v9.
func TestCommitFromOutsideTheGroup(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 1}, clock)
	const kip848ID = "rdkafka-6f0c2a1e-assign-consumer"

	// 6.2: no such group yet.
	if code := commitAs(t, c, 9, "fresh", kip848ID, -1, 11); code != 0 || committedOffset(c, "fresh") != 11 {
		t.Errorf("commit with a member id and generation -1 to a new group: %v, offset %d",
			kerr.ErrorForCode(code), committedOffset(c, "fresh"))
	}
	// The group it made is a simple one: the same consumer commits again.
	if code := commitAs(t, c, 9, "fresh", kip848ID, -1, 12); code != 0 || committedOffset(c, "fresh") != 12 {
		t.Errorf("second commit to the simple group: %v, offset %d", kerr.ErrorForCode(code), committedOffset(c, "fresh"))
	}
	if code := commitAs(t, c, 8, "nosuch", "m", 3, 1); code != kerr.IllegalGeneration.Code {
		t.Errorf("generation 3 to a missing group, v8: %v, want ILLEGAL_GENERATION", kerr.ErrorForCode(code))
	}
	if code := commitAs(t, c, 9, "nosuch", "m", 3, 1); code != kerr.GroupIDNotFound.Code {
		t.Errorf("generation 3 to a missing group, v9: %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(code))
	}

	// A KIP-848 group: refused while it has members, taken once they have left.
	a := &simMember{id: "a", topics: []string{"t"}}
	settle(t, c, []*simMember{a})
	if code := commitAs(t, c, 9, "g", kip848ID, -1, 21); code != kerr.UnknownMemberID.Code {
		t.Errorf("outsider's commit to a consumer group with members: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := commitAs(t, c, 9, "g", "", -1, 21); code != kerr.UnknownMemberID.Code {
		t.Errorf("anonymous commit to a consumer group with members: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	a.epoch = -1 // leave
	if r := a.heartbeat(t, c); r.ErrorCode != 0 {
		t.Fatalf("leave: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if code := commitAs(t, c, 9, "g", kip848ID, -1, 22); code != 0 || committedOffset(c, "g") != 22 {
		t.Errorf("commit to a consumer group without members: %v, offset %d", kerr.ErrorForCode(code), committedOffset(c, "g"))
	}

	// 6.3: a classic group with members refuses an anonymous commit with UNKNOWN_MEMBER_ID
	// and, once empty, takes commits with generation -1 again, member id or not.
	f := newClassicFixture(t, stateStable)
	if code := commitAs(t, f.c, 8, tableGroup, "", -1, 31); code != kerr.UnknownMemberID.Code {
		t.Errorf("anonymous commit to a classic group with members: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := commitAs(t, f.c, 9, tableGroup, kip848ID, -1, 31); code != kerr.UnknownMemberID.Code {
		t.Errorf("outsider's commit to a classic group with members: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if got := committedOffset(f.c, tableGroup); got != -1 {
		t.Fatalf("refused commits stored offset %d", got)
	}
	f = newClassicFixture(t, stateEmpty)
	if code := commitAs(t, f.c, 9, tableGroup, kip848ID, -1, 32); code != 0 || committedOffset(f.c, tableGroup) != 32 {
		t.Errorf("commit with a member id and generation -1 to an empty classic group: %v, offset %d",
			kerr.ErrorForCode(code), committedOffset(f.c, tableGroup))
	}
}

// TestClassicMemberChecks covers what the table does not: a request naming an instance id
// the group does not know is UNKNOWN_MEMBER_ID even from a current member (Kafka's
// validateCurrentMember); LeaveGroup lets a member still holding a MEMBER_ID_REQUIRED id
// leave (NONE) and an administrator remove a static member by its instance id alone.
func TestClassicMemberChecks(t *testing.T) {
	f := newClassicFixture(t, stateStable)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 4
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = tableGroup, f.follower, f.generation, kmsg.StringPtr("nobody")
	resp, _ := f.handle(hb, Client{})
	if code := resp.(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat naming an unknown instance id: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}

	resp, _ = f.handle(joinRequest("", "", []byte("newcomer")), newcomerClient)
	pending := resp.(*kmsg.JoinGroupResponse).MemberID
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 5
	leave.Group = tableGroup
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: pending}, {InstanceID: kmsg.StringPtr(staticInstance)}}
	resp, _ = f.handle(leave, Client{})
	lr := resp.(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != 0 {
		t.Fatalf("leave of a pending member and an administrative removal: %+v", lr)
	}
	f.c.mu.Lock()
	g := f.c.groups[tableGroup]
	_, staticThere := g.members[f.static]
	stillPending := g.pending[pending]
	f.c.mu.Unlock()
	if staticThere || stillPending {
		t.Errorf("after the leave: static member present %v, pending id kept %v", staticThere, stillPending)
	}
	// The pending id left: joining with it is now refused.
	resp, _ = f.handle(joinRequest(pending, "", []byte("newcomer")), newcomerClient)
	if code := resp.(*kmsg.JoinGroupResponse).ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Errorf("join with a member id that left: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
}
