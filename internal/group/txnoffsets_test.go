package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

// txnCommit is one TxnOffsetCommit of t/0 at offset for producer pid of group.
type txnCommit struct {
	version    int16 // 0: 3, the first with group metadata
	group      string
	pid        int64
	epoch      int16
	memberID   string
	instanceID *string
	generation int32
	offset     int64
}

func (r txnCommit) send(t *testing.T, c *Coordinator) int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = r.version
	if req.Version == 0 {
		req.Version = 3
	}
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", r.group, r.pid, r.epoch
	if req.Version >= 3 { // older versions carry no group metadata: kmsg's defaults stand
		req.MemberID, req.InstanceID, req.Generation = r.memberID, r.instanceID, r.generation
	}
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, r.offset
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
	resp, wait := c.Handle(context.Background(), req, Client{})
	if wait != nil {
		resp = wait(context.Background())
	}
	return resp.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// fetchStable is OffsetFetch of group's t/0 at version (7: the top-level form, 8: the
// per-group one) with RequireStable as asked: the code and offset.
func fetchStable(t *testing.T, c *Coordinator, version int16, group string, requireStable bool) (int16, int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.RequireStable = version, requireStable
	if version >= 8 {
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
		resp, _ := c.Handle(context.Background(), req, Client{})
		p := resp.(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]
		return p.ErrorCode, p.Offset
	}
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	resp, _ := c.Handle(context.Background(), req, Client{})
	p := resp.(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
	return p.ErrorCode, p.Offset
}

// endTxn writes producer pid's marker into the offsets log and tells the coordinator, as
// the broker does once WriteTxnMarkers' marker is committed.
func endTxn(t *testing.T, c *Coordinator, l *journal.Log, pid int64, epoch int16, commit bool) {
	t.Helper()
	if _, err := l.WaitMarker(context.Background(), record.EndTxnMarker{ProducerID: pid, ProducerEpoch: epoch, CoordinatorEpoch: 1, Commit: commit}, 0, journal.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	c.CompleteTransaction(0, pid, commit)
}

// TestTxnOffsetCommitPendingUntilMarker: a transaction's offsets are invisible until its
// COMMIT marker, gone after an ABORT, and a RequireStable OffsetFetch answers
// UNSTABLE_OFFSET_COMMIT while they are pending; a plain commit written after a pending
// transactional one wins when the transaction commits; a coordinator that replays the
// partition ends at the same offsets, with an open transaction still pending.
func TestTxnOffsetCommitPendingUntilMarker(t *testing.T) {
	cfg := journal.DefaultConfig()
	cfg.Logger = quiet()
	l, err := journal.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	load := func() *Coordinator {
		c := NewCoordinator(Config{NumPartitions: 1, InitialRebalanceDelay: -1, Logger: quiet(), Now: clock.Now}, fixedTopics{"t": 1})
		t.Cleanup(func() { c.Close() })
		if err := c.Load(context.Background(), 0, journalLog{l}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := load()
	commit := txnCommit{group: "g", pid: 9, generation: -1}

	commit.offset = 10
	if code := commit.send(t, c); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if got := committedOffset(c, "g"); got != -1 {
		t.Fatalf("a pending transaction's offset %d is visible", got)
	}
	for _, v := range []int16{7, 8} {
		if code, off := fetchStable(t, c, v, "g", true); code != kerr.UnstableOffsetCommit.Code || off != -1 {
			t.Fatalf("v%d RequireStable while pending: %v offset %d", v, kerr.ErrorForCode(code), off)
		}
		if code, off := fetchStable(t, c, v, "g", false); code != 0 || off != -1 {
			t.Fatalf("v%d without RequireStable while pending: %v offset %d", v, kerr.ErrorForCode(code), off)
		}
	}
	endTxn(t, c, l, 9, 0, true)
	if code, off := fetchStable(t, c, 8, "g", true); code != 0 || off != 10 {
		t.Fatalf("after COMMIT: %v offset %d, want 10", kerr.ErrorForCode(code), off)
	}

	commit.offset = 20
	if code := commit.send(t, c); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	endTxn(t, c, l, 9, 0, false)
	if code, off := fetchStable(t, c, 8, "g", true); code != 0 || off != 10 {
		t.Fatalf("after ABORT: %v offset %d, want 10 still", kerr.ErrorForCode(code), off)
	}

	commit.offset = 30
	if code := commit.send(t, c); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := commitAs(t, c, 8, "g", "", -1, 40); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	endTxn(t, c, l, 9, 0, true)
	if got := committedOffset(c, "g"); got != 40 {
		t.Fatalf("a transaction's offset 30 replaced the plain commit 40 written after it: %d", got)
	}

	commit.offset = 50 // left open
	if code := commit.send(t, c); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	replayed := load()
	if got := committedOffset(replayed, "g"); got != 40 {
		t.Fatalf("replay: committed offset %d, want 40", got)
	}
	if code, _ := fetchStable(t, replayed, 8, "g", true); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("replay: the open transaction's offset is not pending: %v", kerr.ErrorForCode(code))
	}
	endTxn(t, replayed, l, 9, 0, true)
	if got := committedOffset(replayed, "g"); got != 50 {
		t.Fatalf("replay: offset %d after the open transaction commits, want 50", got)
	}
}

// TestTxnOffsetCommitFencing: Kafka's transactional offset commit validation (4.x
// ClassicGroup.validateOffsetCommit with isTransactional) checks the member only for what
// the request carries (KIP-447), takes the commit while the group completes a rebalance,
// and treats an unknown group as a simple group of its own when the commit comes from
// outside any group.
func TestTxnOffsetCommitFencing(t *testing.T) {
	f := newClassicFixture(t, stateCompletingRebalance)
	cases := []struct {
		name string
		req  txnCommit
		want int16
	}{
		{"member of the generation while completing a rebalance", txnCommit{memberID: f.follower, generation: f.generation}, 0},
		{"static member of the generation", txnCommit{memberID: f.static, instanceID: kmsg.StringPtr(staticInstance), generation: f.generation}, 0},
		{"no member data", txnCommit{generation: -1}, 0},
		{"version 1, before group metadata", txnCommit{version: 1}, 0},
		{"old generation", txnCommit{memberID: f.follower, generation: f.generation - 1}, kerr.IllegalGeneration.Code},
		{"member without its generation", txnCommit{memberID: f.follower, generation: -1}, kerr.IllegalGeneration.Code},
		{"unknown member", txnCommit{memberID: "ghost", generation: f.generation}, kerr.UnknownMemberID.Code},
		{"static instance of another member", txnCommit{memberID: f.follower, instanceID: kmsg.StringPtr(staticInstance), generation: f.generation}, kerr.FencedInstanceID.Code},
		{"unknown static instance", txnCommit{memberID: f.follower, instanceID: kmsg.StringPtr("other-instance"), generation: f.generation}, kerr.UnknownMemberID.Code},
	}
	for _, c := range cases {
		c.req.group, c.req.pid, c.req.offset = tableGroup, 3, 5
		if code := c.req.send(t, f.c); code != c.want {
			t.Errorf("%s: %v, want %v", c.name, kerr.ErrorForCode(code), kerr.ErrorForCode(c.want))
		}
	}
	unknown := []struct {
		name  string
		group string
		req   txnCommit
		want  int16
	}{
		{"a generation", "fresh-1", txnCommit{generation: 2}, kerr.IllegalGeneration.Code},
		{"a member id from outside", "fresh-2", txnCommit{memberID: "m", generation: -1}, 0},
		{"nothing", "fresh-3", txnCommit{generation: -1}, 0},
		{"version 2, before group metadata", "fresh-4", txnCommit{version: 2}, 0},
	}
	for _, c := range unknown {
		c.req.group, c.req.pid, c.req.offset = c.group, 4, 5
		if code := c.req.send(t, f.c); code != c.want {
			t.Errorf("unknown group with %s: %v, want %v", c.name, kerr.ErrorForCode(code), kerr.ErrorForCode(c.want))
		}
		code, _ := fetchStable(t, f.c, 8, c.group, true)
		if taken := code == kerr.UnstableOffsetCommit.Code; taken != (c.want == 0) {
			t.Errorf("unknown group with %s: RequireStable fetch %v after the commit answered %v", c.name, kerr.ErrorForCode(code), kerr.ErrorForCode(c.want))
		}
	}
}

// TestTxnOffsetCommitConsumerGroup: in a KIP-848 group the member epoch stands for the
// generation (ConsumerGroup.validateOffsetCommit): a member at its epoch commits, one at an
// old epoch is fenced, and an unknown member is refused.
func TestTxnOffsetCommitConsumerGroup(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 2}, clock)
	m := &simMember{id: "a", topics: []string{"t"}}
	settle(t, c, []*simMember{m})
	if m.epoch <= 0 {
		t.Fatalf("member epoch %d", m.epoch)
	}
	cases := []struct {
		name string
		req  txnCommit
		want int16
	}{
		{"member at its epoch", txnCommit{memberID: "a", generation: m.epoch}, 0},
		{"member at an old epoch", txnCommit{memberID: "a", generation: m.epoch - 1}, kerr.StaleMemberEpoch.Code},
		{"unknown member", txnCommit{memberID: "ghost", generation: m.epoch}, kerr.UnknownMemberID.Code},
	}
	for _, tc := range cases {
		tc.req.group, tc.req.pid, tc.req.offset = "g", 11, 1
		if code := tc.req.send(t, c); code != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(code), kerr.ErrorForCode(tc.want))
		}
	}
}
