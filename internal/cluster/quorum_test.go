package cluster

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestFollowerProposalCommitsOnEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	c.everywhere(5*time.Second, "three registered brokers with HTTP addresses", func(s *State) bool {
		if len(s.Brokers) != 3 || s.ClusterID == "" {
			return false
		}
		for _, b := range s.Brokers {
			if b.HTTPAddr == "" || b.Fenced {
				return false
			}
		}
		return true
	})
	f := c.follower()
	topic, err := f.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 3, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if topic == nil || len(topic.Partitions) != 3 || len(topic.Partitions[0].Replicas) != 3 {
		t.Fatalf("create answered %+v", topic)
	}
	// The proposer reads its own write at once.
	if got, ok := f.State().Topics["orders"]; !ok || got.ID != topic.ID {
		t.Fatalf("proposer does not see its topic: %+v", got)
	}
	c.everywhere(5*time.Second, "the topic on every node", func(s *State) bool {
		got, ok := s.Topics["orders"]
		return ok && got.ID == topic.ID && len(got.Partitions) == 3
	})
	// Values cross the hop too: blocks from the leader and a follower do not overlap.
	first, err := c.leader().AllocateProducerIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.AllocateProducerIDs(ctx, 10)
	if err != nil || second != first+10 {
		t.Fatalf("producer ids %d then %d over the hop (%v)", first, second, err)
	}
	ids := map[string]bool{}
	for _, n := range c.running() {
		ids[n.ClusterID()] = true
	}
	if len(ids) != 1 {
		t.Fatalf("cluster ids differ: %v", ids)
	}
}

func TestSentinelErrorsSurviveForwarding(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	f := c.follower()
	if _, err := f.CreateTopic(ctx, TopicSpec{Name: "a", Partitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	p := f.State().Topics["a"].Partitions[0]
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"topic exists", func() error {
			_, err := f.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "a"}, Count: 1, ReplicationFactor: 1})
			return err
		}, ErrTopicExists},
		{"unknown topic", func() error { return f.DeleteTopic(ctx, "nope") }, ErrUnknownTopic},
		{"replication factor", func() error {
			_, err := f.CreateTopic(ctx, TopicSpec{Name: "b", Partitions: 1, ReplicationFactor: 4}, false)
			return err
		}, ErrInvalidReplicationFactor},
		{"invalid config", func() error {
			_, err := f.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "c", Configs: map[string]string{"cleanup.policy": "never"}}, Count: 1, ReplicationFactor: 1})
			return err
		}, ErrInvalidConfig},
		{"invalid topic", func() error {
			_, err := f.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "a/b"}, Count: 1, ReplicationFactor: 1})
			return err
		}, ErrInvalidTopic},
		{"invalid partitions", func() error {
			_, err := f.propose(ctx, "add-partitions", cmdAddPartitions{Name: "a", Partitions: []Partition{{ID: 7}}})
			return err
		}, ErrInvalidPartitions},
		{"invalid request", func() error { _, err := f.propose(ctx, "no-such-command", struct{}{}); return err }, ErrInvalidRequest},
		{"stale leader epoch", func() error {
			_, err := f.AlterPartition(ctx, "a", 0, p.Leader, p.LeaderEpoch+1, p.PartitionEpoch, p.ISR)
			return err
		}, ErrStaleLeaderEpoch},
		{"unknown broker", func() error { return f.UnregisterBroker(ctx, 42) }, ErrUnknownBroker},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		var remote *remoteError
		if !errors.As(err, &remote) {
			t.Errorf("%s: %v did not come over the hop", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want.Error()) {
			t.Errorf("%s: message %q lost the sentinel's text", tc.name, err)
		}
	}
}

func TestLeaderFailoverKeepsProposalsWorking(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	old := c.leader()
	oldID := old.NodeID()
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "before", Partitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	c.stop(int(oldID))
	// Propose at once, while the others may still think the stopped node leads: the
	// forwarding retries until the new leader answers.
	for _, n := range c.running() {
		name := "after-" + string(rune('0'+n.NodeID()))
		if _, err := n.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2, ReplicationFactor: 2}, false); err != nil {
			t.Fatalf("node %d proposing after failover: %v", n.NodeID(), err)
		}
	}
	next := c.leader()
	if next.NodeID() == oldID {
		t.Fatal("stopped node still leads")
	}
	// The new controller fences the stopped broker and moves its partitions.
	c.everywhere(testSession+5*time.Second, "the old leader fenced and leading nothing", func(s *State) bool {
		if !s.Brokers[oldID].Fenced {
			return false
		}
		for _, p := range s.Topics["before"].Partitions {
			if p.Leader == oldID || slices.Contains(p.ISR, oldID) {
				return false
			}
		}
		return true
	})
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "fenced", Partitions: 4, ReplicationFactor: 2}, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range next.State().Topics["fenced"].Partitions {
		if slices.Contains(p.Replicas, oldID) {
			t.Fatalf("a topic created after the fencing was placed on the fenced broker: %s", describe(p))
		}
	}
}

func TestSilentBrokerIsFencedAndItsLeadershipMoves(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	if _, err := c.leader().CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	victim := c.follower().NodeID()
	before := c.leader().State().Topics["t"]
	led := 0
	for _, p := range before.Partitions {
		if p.Leader == victim {
			led++
		}
	}
	if led != 2 {
		t.Fatalf("broker %d leads %d of 6 partitions, want 2", victim, led)
	}
	stoppedAt := time.Now()
	c.stop(int(victim))
	c.everywhere(testSession+3*time.Second, "the silent broker fenced", func(s *State) bool { return s.Brokers[victim].Fenced })
	if took := time.Since(stoppedAt); took > testSession+2*time.Second {
		t.Errorf("fencing took %v with a session timeout of %v", took, testSession)
	}
	after := c.leader().State().Topics["t"]
	for i, p := range after.Partitions {
		old := before.Partitions[i]
		switch {
		case p.Leader == victim || p.Leader < 0:
			t.Errorf("partition %d: %s after fencing %d", i, describe(p), victim)
		case slices.Contains(p.ISR, victim):
			t.Errorf("partition %d: fenced %d still in ISR %v", i, victim, p.ISR)
		case old.Leader == victim && (p.LeaderEpoch != old.LeaderEpoch+1 || !slices.Contains(old.ISR, p.Leader)):
			t.Errorf("partition %d: moved from %s to %s", i, describe(old), describe(p))
		case old.Leader != victim && (p.Leader != old.Leader || p.LeaderEpoch != old.LeaderEpoch):
			t.Errorf("partition %d: leader changed needlessly from %s to %s", i, describe(old), describe(p))
		case p.PartitionEpoch <= old.PartitionEpoch:
			t.Errorf("partition %d: partition epoch not bumped: %s", i, describe(p))
		}
	}
	// Back again: the restarted broker registers and is live, but it rejoins ISRs only
	// through its leaders' AlterPartition.
	c.open(int(victim))
	c.waitReady(int(victim), int(victim))
	c.everywhere(5*time.Second, "the broker unfenced", func(s *State) bool { return !s.Brokers[victim].Fenced })
}

func TestFencedBrokerThatHeartbeatsIsUnfenced(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	f := c.follower()
	id := f.NodeID()
	if _, err := f.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	// The controller fences a live broker (as after a pause longer than the session);
	// the broker's next heartbeat unfences it.
	if _, err := c.leader().propose(ctx, "broker-state", cmdBrokerState{ID: id, Fenced: true}); err != nil {
		t.Fatal(err)
	}
	c.everywhere(testSession+2*time.Second, "the heartbeating broker unfenced", func(s *State) bool {
		b := s.Brokers[id]
		return !b.Fenced && !b.ShuttingDown
	})
	// The fencing took its leadership and ISR places; unfencing gives back neither (it
	// rejoins ISRs through AlterPartition once it has caught up).
	for _, p := range f.State().Topics["t"].Partitions {
		if p.Leader == id || slices.Contains(p.ISR, id) || p.Leader < 0 {
			t.Errorf("after fence and unfence of %d: %s", id, describe(p))
		}
	}
}

func TestFiveVotersSurviveTwoDown(t *testing.T) {
	c := startCluster(t, 5)
	ctx := ctxFor(t)
	c.stop(int(c.leader().NodeID()))
	c.stop(int(c.follower().NodeID()))
	if got := len(c.running()); got != 3 {
		t.Fatalf("%d nodes running", got)
	}
	l := c.leader()
	for _, n := range c.running() {
		if _, err := n.AllocateProducerIDs(ctx, 1); err != nil {
			t.Fatalf("node %d with two voters down: %v", n.NodeID(), err)
		}
	}
	c.everywhere(testSession+5*time.Second, "two brokers fenced", func(s *State) bool {
		fenced := 0
		for _, b := range s.Brokers {
			if b.Fenced {
				fenced++
			}
		}
		return fenced == 2
	})
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "x", Partitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "y", Partitions: 1, ReplicationFactor: 4}, false); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("RF 4 with 3 live brokers: %v", err)
	}
	for _, p := range l.State().Topics["x"].Partitions {
		for _, r := range p.Replicas {
			if c.nodes[r-1] == nil {
				t.Errorf("replica placed on stopped broker %d: %s", r, describe(p))
			}
		}
	}
}

func TestControlledShutdownMovesLeadershipAway(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	l := c.leader()
	id := l.NodeID()
	if _, err := l.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 6, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateTopic(ctx, TopicSpec{Name: "solo", Partitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	if err := l.ControlledShutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s := l.State()
	for _, p := range s.Topics["t"].Partitions {
		if p.Leader == id || p.Leader < 0 || slices.Contains(p.ISR, id) {
			t.Errorf("after controlled shutdown of %d: %s", id, describe(p))
		}
	}
	for _, p := range s.Topics["solo"].Partitions {
		if p.Replicas[0] == id && p.Leader != id {
			t.Errorf("a partition nobody else can lead lost its leader: %s", describe(p))
		}
	}
	if !s.Brokers[id].ShuttingDown {
		t.Error("broker not marked as shutting down")
	}
	eventually(t, 5*time.Second, "raft leadership handed over", func() bool { return l.raft.State() != raft.Leader })
	// While it shuts down it gets no new replicas.
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "later", Partitions: 4, ReplicationFactor: 2}, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.leader().State().Topics["later"].Partitions {
		if slices.Contains(p.Replicas, id) {
			t.Errorf("placed on a broker shutting down: %s", describe(p))
		}
	}
}

func TestWholeQuorumRestartKeepsMetadata(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	created, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "kept", Partitions: 3, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.leader().Snapshot(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.follower().AllocateProducerIDs(ctx, 5); err != nil { // after the snapshot: replayed from the log
		t.Fatal(err)
	}
	clusterID := c.leader().ClusterID()
	for id := 1; id <= 3; id++ {
		c.stop(id)
	}
	for id := 1; id <= 3; id++ {
		c.open(id)
	}
	c.waitReady(1, 3)
	c.everywhere(5*time.Second, "the metadata back on every node", func(s *State) bool {
		t := s.Topics["kept"]
		return s.ClusterID == clusterID && t != nil && t.ID == created.ID && len(s.Brokers) == 3
	})
	next, err := c.follower().AllocateProducerIDs(ctx, 1)
	if err != nil || next != 5 {
		t.Fatalf("producer ids after restart start at %d (%v)", next, err)
	}
}
