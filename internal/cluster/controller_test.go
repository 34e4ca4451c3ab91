package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"
)

// openWithBrokers opens a single voter and registers extra brokers that never heartbeat,
// under a session timeout long enough that the test never sees them fenced by silence.
func openWithBrokers(t *testing.T, extra ...int32) *Node {
	t.Helper()
	ctx := ctxFor(t)
	n, err := Open(ctx, Config{NodeID: 1, DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:9092", SessionTimeout: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range extra {
		if _, err := n.propose(ctx, "register-broker", cmdRegisterBroker{Broker: Broker{ID: id, Host: "127.0.0.1", Port: 9092 + id}}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func setFenced(t *testing.T, n *Node, id int32, fenced bool) {
	t.Helper()
	if _, err := n.propose(ctxFor(t), "broker-state", cmdBrokerState{ID: id, Fenced: fenced}); err != nil {
		t.Fatal(err)
	}
}

func partitionOf(n *Node, topic string, id int32) Partition {
	return n.State().Topics[topic].Partitions[id]
}

func TestPlacementSpreadsReplicasAndBalancesLeaders(t *testing.T) {
	cases := []struct {
		brokers    int32
		partitions int32
		rf         int16
	}{
		{3, 30, 3}, {3, 30, 1}, {5, 20, 2}, {4, 12, 3}, {5, 7, 5}, {5, 23, 3}, {7, 50, 3}, {2, 9, 2}, {6, 100, 4},
	}
	for _, tc := range cases {
		s := emptyState()
		for id := int32(1); id <= tc.brokers; id++ {
			s.Brokers[id] = Broker{ID: id}
		}
		// A fenced broker gets nothing.
		s.Brokers[99] = Broker{ID: 99, Fenced: true}
		ps, err := place(s, 0, tc.partitions, tc.rf)
		if err != nil {
			t.Fatal(err)
		}
		leaders, replicas := map[int32]int{}, map[int32]int{}
		for i, p := range ps {
			if p.ID != int32(i) || p.Leader != p.Replicas[0] || !slices.Equal(p.ISR, p.Replicas) || len(p.Replicas) != int(tc.rf) {
				t.Fatalf("%+v: partition %d is %s", tc, i, describe(p))
			}
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				if seen[r] || r == 99 {
					t.Fatalf("%+v: partition %d replicas %v", tc, i, p.Replicas)
				}
				seen[r] = true
				replicas[r]++
			}
			leaders[p.Leader]++
		}
		for id := int32(1); id <= tc.brokers; id++ {
			wantLeaders := float64(tc.partitions) / float64(tc.brokers)
			if d := float64(leaders[id]) - wantLeaders; d <= -1 || d >= 1 {
				t.Errorf("%+v: broker %d leads %d partitions", tc, id, leaders[id])
			}
			wantReplicas := float64(tc.partitions) * float64(tc.rf) / float64(tc.brokers)
			if d := float64(replicas[id]) - wantReplicas; d <= -1 || d >= 1 {
				t.Errorf("%+v: broker %d holds %d replicas", tc, id, replicas[id])
			}
		}
		again, _ := place(s, 0, tc.partitions, tc.rf)
		if !reflect.DeepEqual(ps, again) {
			t.Errorf("%+v: placement is not deterministic", tc)
		}
	}
	if _, err := place(&State{Brokers: map[int32]Broker{1: {ID: 1}, 2: {ID: 2, ShuttingDown: true}}}, 0, 1, 2); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("RF 2 over one live broker: %v", err)
	}
}

func TestPlacementAccountsForExistingLoad(t *testing.T) {
	n := openWithBrokers(t, 2, 3)
	ctx := ctxFor(t)
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "a", Partitions: 10, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	if err := n.CreatePartitions(ctx, "a", 30, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "b", Partitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int{}
	for _, topic := range []string{"a", "b"} {
		for _, p := range n.State().Topics[topic].Partitions {
			leaders[p.Leader]++
		}
	}
	if leaders[1] != 11 || leaders[2] != 11 || leaders[3] != 11 {
		t.Fatalf("leaders per broker %v, want 11 each", leaders)
	}
}

func TestAlterPartitionRefusesStaleAndIneligible(t *testing.T) {
	n := openWithBrokers(t, 2, 3, 4)
	ctx := ctxFor(t)
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}}}}); err != nil {
		t.Fatal(err)
	}
	setFenced(t, n, 4, true)
	cases := []struct {
		name                     string
		leader, epoch, partEpoch int32
		isr                      []int32
		want                     error
	}{
		{"not the leader", 2, 0, 0, []int32{1, 2}, ErrStaleLeaderEpoch},
		{"stale leader epoch", 1, 1, 0, []int32{1, 2}, ErrStaleLeaderEpoch},
		{"stale partition epoch", 1, 0, 3, []int32{1, 2}, ErrStalePartitionEpoch},
		{"no leader in ISR", 1, 0, 0, []int32{2, 3}, ErrIneligibleReplica},
		{"not a replica", 1, 0, 0, []int32{1, 4}, ErrIneligibleReplica},
		{"duplicate", 1, 0, 0, []int32{1, 1}, ErrIneligibleReplica},
	}
	for _, tc := range cases {
		if _, err := n.AlterPartition(ctx, "t", 0, tc.leader, tc.epoch, tc.partEpoch, tc.isr); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := n.AlterPartition(ctx, "t", 5, 1, 0, 0, []int32{1}); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown partition: %v", err)
	}
	got, err := n.AlterPartition(ctx, "t", 0, 1, 0, 0, []int32{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.ISR, []int32{1, 3}) || got.PartitionEpoch != 1 || got.LeaderEpoch != 0 || !reflect.DeepEqual(got, partitionOf(n, "t", 0)) {
		t.Fatalf("answered %s, state %s", describe(got), describe(partitionOf(n, "t", 0)))
	}
	// The old partition epoch is now stale; growing the ISR back needs the new one.
	if _, err := n.AlterPartition(ctx, "t", 0, 1, 0, 0, []int32{1, 2, 3}); !errors.Is(err, ErrStalePartitionEpoch) {
		t.Fatalf("replayed epoch: %v", err)
	}
	// A fenced broker may not join the ISR.
	if _, err := n.propose(ctx, "reassign-partition", cmdReassign{Topic: "t", Partition: 0, Target: []int32{1, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	p := partitionOf(n, "t", 0)
	if _, err := n.AlterPartition(ctx, "t", 0, 1, 0, p.PartitionEpoch, []int32{1, 3, 4}); !errors.Is(err, ErrIneligibleReplica) {
		t.Fatalf("fenced broker into the ISR: %v", err)
	}
}

func TestElectionNeverLeavesTheISR(t *testing.T) {
	n := openWithBrokers(t, 2, 3)
	ctx := ctxFor(t)
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 2, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}}}}}); err != nil {
		t.Fatal(err)
	}
	// The leader shrinks the ISR to itself and 3; then 3 is fenced, then the leader.
	if _, err := n.AlterPartition(ctx, "t", 0, 2, 0, 0, []int32{2, 3}); err != nil {
		t.Fatal(err)
	}
	setFenced(t, n, 3, true)
	if p := partitionOf(n, "t", 0); p.Leader != 2 || !slices.Equal(p.ISR, []int32{2}) || p.LeaderEpoch != 0 {
		t.Fatalf("after fencing follower 3: %s", describe(p))
	}
	setFenced(t, n, 2, true)
	p := partitionOf(n, "t", 0)
	if p.Leader != -1 || !slices.Equal(p.ISR, []int32{2}) || p.LeaderEpoch != 1 {
		t.Fatalf("broker 1 is live but out of the ISR; want offline with ISR [2], got %s", describe(p))
	}
	// Out-of-ISR broker 3 coming back does not lead either.
	setFenced(t, n, 3, false)
	if p := partitionOf(n, "t", 0); p.Leader != -1 {
		t.Fatalf("out-of-ISR replica elected: %s", describe(p))
	}
	// The last ISR member coming back leads again, in a new epoch.
	setFenced(t, n, 2, false)
	if p := partitionOf(n, "t", 0); p.Leader != 2 || p.LeaderEpoch != 2 {
		t.Fatalf("ISR member back: %s", describe(p))
	}
	// With unclean election enabled an out-of-ISR replica may lead, and is the whole ISR.
	setFenced(t, n, 2, true)
	if err := n.AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "unclean.leader.election.enable", Value: "true"}}, false); err != nil {
		t.Fatal(err)
	}
	if p := partitionOf(n, "t", 0); p.Leader != 3 || !slices.Equal(p.ISR, []int32{3}) || p.LeaderEpoch != 4 {
		t.Fatalf("unclean election: %s", describe(p))
	}
}

func TestISRElectionInAQuorum(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxFor(t)
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	p := c.leader().State().Topics["t"].Partitions[0]
	leader := c.node(p.Leader)
	// The partition leader drops both followers from the ISR, then dies: the live
	// out-of-ISR replicas must not be elected.
	if _, err := leader.AlterPartition(ctx, "t", 0, p.Leader, p.LeaderEpoch, p.PartitionEpoch, []int32{p.Leader}); err != nil {
		t.Fatal(err)
	}
	c.stop(int(p.Leader))
	c.everywhere(testSession+5*time.Second, "the partition offline", func(s *State) bool {
		q := s.Topics["t"].Partitions[0]
		return s.Brokers[p.Leader].Fenced && q.Leader == -1 && slices.Equal(q.ISR, []int32{p.Leader})
	})
	if err := c.follower().AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "unclean.leader.election.enable", Value: "true"}}, false); err != nil {
		t.Fatal(err)
	}
	c.everywhere(5*time.Second, "an unclean leader", func(s *State) bool {
		q := s.Topics["t"].Partitions[0]
		return q.Leader >= 0 && q.Leader != p.Leader && slices.Equal(q.ISR, []int32{q.Leader})
	})
}

func TestReassignmentAddsCatchesUpAndRemoves(t *testing.T) {
	n := openWithBrokers(t, 2, 3, 4)
	ctx := ctxFor(t)
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}},
		{ID: 1, Leader: 2, Replicas: []int32{2, 3}, ISR: []int32{2, 3}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := n.ReassignPartition(ctx, "t", 0, []int32{2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	p := partitionOf(n, "t", 0)
	if !slices.Equal(p.Replicas, []int32{2, 3, 4, 1}) || !slices.Equal(p.AddingReplicas, []int32{4}) || !slices.Equal(p.RemovingReplicas, []int32{1}) || p.Leader != 1 {
		t.Fatalf("reassignment started as %s adding %v removing %v", describe(p), p.AddingReplicas, p.RemovingReplicas)
	}
	if r := n.State().Reassignments(); len(r) != 1 || r[0].Topic != "t" || r[0].Partition != 0 {
		t.Fatalf("listed %+v", r)
	}
	for _, bad := range [][]int32{{}, {2, 2}, {2, 9}} {
		if err := n.ReassignPartition(ctx, "t", 1, bad); err == nil {
			t.Errorf("target %v accepted", bad)
		}
	}
	if err := n.ReassignPartition(ctx, "t", 1, nil); !errors.Is(err, ErrNoReassignment) {
		t.Errorf("cancelling nothing: %v", err)
	}
	// Broker 4 catches up: the leader adds it to the ISR, which completes the move and
	// hands leadership from the removed broker 1 to the first target replica in the ISR.
	done, err := n.AlterPartition(ctx, "t", 0, 1, p.LeaderEpoch, p.PartitionEpoch, []int32{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done.Replicas, []int32{2, 3, 4}) || !slices.Equal(done.ISR, []int32{2, 3, 4}) || done.Leader != 2 ||
		done.LeaderEpoch != p.LeaderEpoch+1 || len(done.AddingReplicas)+len(done.RemovingReplicas) != 0 {
		t.Fatalf("completed as %s", describe(done))
	}
	if r := n.State().Reassignments(); len(r) != 0 {
		t.Fatalf("still listed: %+v", r)
	}
	// A cancelled reassignment goes back to the old replicas.
	if err := n.ReassignPartition(ctx, "t", 1, []int32{4, 1}); err != nil {
		t.Fatal(err)
	}
	if err := n.ReassignPartition(ctx, "t", 1, nil); err != nil {
		t.Fatal(err)
	}
	if q := partitionOf(n, "t", 1); !slices.Equal(q.Replicas, []int32{2, 3}) || !slices.Equal(q.ISR, []int32{2, 3}) || q.Leader != 2 {
		t.Fatalf("after cancel: %s", describe(q))
	}
}

func TestUnregisterBrokerReassignsItsReplicas(t *testing.T) {
	n := openWithBrokers(t, 2, 3, 4)
	ctx := context.Background()
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 3, Replicas: []int32{3, 1, 2}, ISR: []int32{3, 1, 2}},
		{ID: 1, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := n.UnregisterBroker(ctx, 3); err != nil {
		t.Fatal(err)
	}
	s := n.State()
	if _, ok := s.Brokers[3]; ok {
		t.Fatal("broker 3 still registered")
	}
	p := s.Topics["t"].Partitions[0]
	if p.Leader != 1 || slices.Contains(p.ISR, 3) || !slices.Equal(p.AddingReplicas, []int32{4}) || !slices.Equal(p.RemovingReplicas, []int32{3}) {
		t.Fatalf("partition 0 after removing 3: %s adding %v removing %v", describe(p), p.AddingReplicas, p.RemovingReplicas)
	}
	if q := s.Topics["t"].Partitions[1]; !slices.Equal(q.Replicas, []int32{1, 2}) || q.PartitionEpoch != 0 {
		t.Fatalf("partition 1 touched: %s", describe(q))
	}
	// Once broker 4 has caught up the move completes without broker 3.
	done, err := n.AlterPartition(ctx, "t", 0, 1, p.LeaderEpoch, p.PartitionEpoch, []int32{1, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done.Replicas, []int32{4, 1, 2}) || done.Leader != 1 {
		t.Fatalf("completed as %s", describe(done))
	}
	if err := n.UnregisterBroker(ctx, 3); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("second unregister: %v", err)
	}
}

func TestPreferredLeaderElection(t *testing.T) {
	n := openWithBrokers(t, 2)
	ctx := ctxFor(t)
	if err := n.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "auto.leader.rebalance.enable", Value: "false"}, {Name: "leader.imbalance.check.interval.seconds", Value: "1"}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 1, Replicas: []int32{2, 1}, ISR: []int32{2, 1}},
		{ID: 1, Leader: 1, Replicas: []int32{2, 1}, ISR: []int32{1}},
		{ID: 2, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}}}); err != nil {
		t.Fatal(err)
	}
	moved, err := n.ElectPreferredLeaders(ctx)
	if err != nil || moved != 1 {
		t.Fatalf("moved %d (%v), want 1", moved, err)
	}
	s := n.State().Topics["t"]
	if p := s.Partitions[0]; p.Leader != 2 || p.LeaderEpoch != 1 {
		t.Errorf("preferred replica in the ISR did not take over: %s", describe(p))
	}
	if p := s.Partitions[1]; p.Leader != 1 || p.LeaderEpoch != 0 {
		t.Errorf("preferred replica outside the ISR took over: %s", describe(p))
	}
	if p := s.Partitions[2]; p.Leader != 1 || p.LeaderEpoch != 0 {
		t.Errorf("preferred leader moved: %s", describe(p))
	}
	// With auto.leader.rebalance.enable the controller does it by itself.
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "u", Partitions: []Partition{
		{ID: 0, Leader: 1, Replicas: []int32{2, 1}, ISR: []int32{1, 2}}}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the check interval: nothing may move while disabled
	if p := partitionOf(n, "u", 0); p.Leader != 1 {
		t.Fatalf("moved with auto.leader.rebalance.enable=false: %s", describe(p))
	}
	if err := n.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "auto.leader.rebalance.enable", Value: "true"}}, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the controller to elect the preferred leader", func() bool { return partitionOf(n, "u", 0).Leader == 2 })
}

func TestElectLeaders(t *testing.T) {
	n := openWithBrokers(t, 2, 3)
	ctx := ctxFor(t)
	if _, err := n.propose(ctx, "create-topic", cmdCreateTopic{Topic: Topic{Name: "t", Partitions: []Partition{
		{ID: 0, Leader: 1, Replicas: []int32{2, 1}, ISR: []int32{2, 1}},                // preferred 2 can lead
		{ID: 1, Leader: 1, Replicas: []int32{3, 1}, ISR: []int32{1}},                   // preferred 3 is out of the ISR
		{ID: 2, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}},                // already preferred
		{ID: 3, Leader: -1, Replicas: []int32{3, 2}, ISR: []int32{9}}}}}); err != nil { // offline
		t.Fatal(err)
	}
	tp := func(p int32) TopicPartition { return TopicPartition{"t", p} }
	got, err := n.ElectLeaders(ctx, false, []TopicPartition{tp(0), tp(1), tp(2), {"nope", 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []ElectionResult{{TopicPartition{"nope", 0}, UnknownPartition}, {tp(0), Elected}, {tp(1), LeaderNotAvailable}, {tp(2), ElectionNotNeeded}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("preferred election %+v, want %+v", got, want)
	}
	if p := partitionOf(n, "t", 0); p.Leader != 2 || p.LeaderEpoch != 1 {
		t.Fatalf("partition 0: %s", describe(p))
	}
	// Unclean over every partition: only the offline one needs it; it takes the first live
	// replica, which becomes the whole ISR.
	got, err = n.ElectLeaders(ctx, true, nil)
	if err != nil || !reflect.DeepEqual(got, []ElectionResult{{tp(3), Elected}}) {
		t.Fatalf("unclean election %+v %v", got, err)
	}
	if p := partitionOf(n, "t", 3); p.Leader != 3 || !slices.Equal(p.ISR, []int32{3}) {
		t.Fatalf("partition 3: %s", describe(p))
	}
}
