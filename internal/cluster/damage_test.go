package cluster

import (
	"errors"
	"slices"
	"testing"
)

// TestReportDamagedReplica: a damaged follower leaves the ISR and is marked recovering; a
// damaged leader hands leadership to another ISR member; a recovering replica is never
// elected (offline, preferred or unclean election) until its leader adds it back to the
// ISR, which clears the mark; the only ISR member is kept.
func TestReportDamagedReplica(t *testing.T) {
	ctx := ctxFor(t)
	n := openWithBrokers(t, 2, 3)
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "d", Partitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	p := partitionOf(n, "d", 0)
	leader := p.Leader
	follower := p.Replicas[1]
	if follower == leader {
		follower = p.Replicas[2]
	}

	// A damaged follower leaves the ISR; leadership stays, at a new leader epoch that
	// fences the fetches the follower sent before it truncates.
	out, err := n.ReportDamagedReplica(ctx, "d", 0, follower, DamagedData, 42)
	if err != nil || !out.Removed {
		t.Fatalf("report follower: %+v, %v", out, err)
	}
	q := partitionOf(n, "d", 0)
	if slices.Contains(q.ISR, follower) || !slices.Contains(q.Recovering, follower) || q.Leader != leader ||
		q.PartitionEpoch <= p.PartitionEpoch || q.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("after follower report: %s recovering %v", describe(q), q.Recovering)
	}
	// Reporting again (new damage found while recovering) fences again; the mark stays single.
	if _, err := n.ReportDamagedReplica(ctx, "d", 0, follower, DamagedData, 42); err != nil {
		t.Fatal(err)
	}
	if r := partitionOf(n, "d", 0); r.LeaderEpoch != q.LeaderEpoch+1 || r.Leader != leader || len(r.Recovering) != 1 {
		t.Fatalf("a repeated report: %s recovering %v", describe(r), r.Recovering)
	}
	p = partitionOf(n, "d", 0)

	// A damaged leader: the remaining ISR member leads.
	out, err = n.ReportDamagedReplica(ctx, "d", 0, leader, StorageFailed, -1)
	if err != nil || !out.Removed {
		t.Fatalf("report leader: %+v, %v", out, err)
	}
	q = partitionOf(n, "d", 0)
	third := q.ISR[0]
	if len(q.ISR) != 1 || third == leader || third == follower || q.Leader != third || q.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("after leader report: %s", describe(q))
	}
	if out.Partition.Leader != third {
		t.Fatalf("outcome partition %s", describe(out.Partition))
	}

	// The last ISR member is kept even when damaged.
	out, err = n.ReportDamagedReplica(ctx, "d", 0, third, DamagedData, 7)
	if err != nil || out.Removed {
		t.Fatalf("report of the only ISR member: %+v, %v", out, err)
	}
	if r := partitionOf(n, "d", 0); r.Leader != third || !slices.Equal(r.ISR, []int32{third}) {
		t.Fatalf("the only ISR member was dropped: %s", describe(r))
	}

	// The leader fails: the partition goes offline rather than elect a recovering replica,
	// even with unclean elections enabled.
	if err := n.AlterTopicConfigs(ctx, "d", []ConfigOp{{Name: "unclean.leader.election.enable", Value: "true"}}, false); err != nil {
		t.Fatal(err)
	}
	setFenced(t, n, third, true)
	if r := partitionOf(n, "d", 0); r.Leader != -1 {
		t.Fatalf("a recovering replica was elected: %s recovering %v", describe(r), r.Recovering)
	}
	setFenced(t, n, third, false)
	q = partitionOf(n, "d", 0)
	if q.Leader != third {
		t.Fatalf("the ISR member did not lead again: %s", describe(q))
	}

	// The preferred replica is never elected while it recovers.
	if moved, err := n.ElectPreferredLeaders(ctx); err != nil || (moved > 0 && slices.Contains(q.Recovering, partitionOf(n, "d", 0).Leader)) {
		t.Fatalf("preferred election: moved %d, %v: %s", moved, err, describe(partitionOf(n, "d", 0)))
	}

	// The leader adds the follower back once it caught up: the mark goes.
	r, err := n.AlterPartition(ctx, "d", 0, q.Leader, q.LeaderEpoch, q.PartitionEpoch, []int32{q.Leader, follower})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.Recovering, follower) || !slices.Contains(r.Recovering, leader) {
		t.Fatalf("after the re-add: recovering %v", r.Recovering)
	}

	if _, err := n.ReportDamagedReplica(ctx, "d", 0, 99, DamagedData, 0); !errors.Is(err, ErrIneligibleReplica) {
		t.Fatalf("report for a non-replica: %v", err)
	}
	if _, err := n.ReportDamagedReplica(ctx, "nope", 0, 1, DamagedData, 0); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("report for an unknown topic: %v", err)
	}
}

// TestRestartLeavesISRWhenWritesMayBeLost: a broker that may have lost acknowledged records
// in an OS crash (fsync other than always) gives up leadership and its ISR place when it
// registers again, so a shorter log never leads while others hold the records; a broker
// that is the only ISR member keeps it, and one with fsync=always keeps everything. Every
// partition it followed starts a new leader epoch, fencing its previous run's fetches.
func TestRestartLeavesISRWhenWritesMayBeLost(t *testing.T) {
	ctx := ctxFor(t)
	n := openWithBrokers(t, 2, 3)
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "r", Partitions: 3, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "solo", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	register := func(id int32, leave bool) {
		t.Helper()
		if _, err := n.propose(ctx, "register-broker", cmdRegisterBroker{Broker: Broker{ID: id, Host: "127.0.0.1", Port: 9092 + id}, LeaveISR: leave}); err != nil {
			t.Fatal(err)
		}
	}
	solo := partitionOf(n, "solo", 0).Leader
	var led int32 = -1
	for i := int32(0); i < 3; i++ {
		if l := partitionOf(n, "r", i).Leader; l != solo {
			led = l
		}
	}
	if led < 0 {
		led = partitionOf(n, "r", 0).Leader
	}
	before := map[int32]Partition{}
	for i := int32(0); i < 3; i++ {
		before[i] = partitionOf(n, "r", i)
	}
	register(led, false)
	for i := int32(0); i < 3; i++ {
		if p := partitionOf(n, "r", i); p.PartitionEpoch != before[i].PartitionEpoch {
			t.Fatalf("an fsync=always restart changed %s", describe(p))
		}
	}
	register(led, true)
	for i := int32(0); i < 3; i++ {
		p := partitionOf(n, "r", i)
		if p.Leader == led || slices.Contains(p.ISR, led) || len(p.ISR) != 2 {
			t.Fatalf("broker %d still leads or is in the ISR after a lossy restart: %s", led, describe(p))
		}
		// A new leader epoch everywhere: a new leader where it led, and where it followed a
		// fence for the fetches its previous run left behind.
		if p.LeaderEpoch != before[i].LeaderEpoch+1 {
			t.Fatalf("leader epoch %d after a lossy restart of broker %d, want %d: %s", p.LeaderEpoch, led, before[i].LeaderEpoch+1, describe(p))
		}
	}
	register(solo, true)
	if p := partitionOf(n, "solo", 0); p.Leader != solo || !slices.Equal(p.ISR, []int32{solo}) {
		t.Fatalf("the only replica lost its partition: %s", describe(p))
	}
}
