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

	// A damaged follower leaves the ISR; leadership stays.
	out, err := n.ReportDamagedReplica(ctx, "d", 0, follower, DamagedData, 42)
	if err != nil || !out.Removed {
		t.Fatalf("report follower: %+v, %v", out, err)
	}
	q := partitionOf(n, "d", 0)
	if slices.Contains(q.ISR, follower) || !slices.Contains(q.Recovering, follower) || q.Leader != leader ||
		q.PartitionEpoch != p.PartitionEpoch+1 || q.LeaderEpoch != p.LeaderEpoch {
		t.Fatalf("after follower report: %s recovering %v", describe(q), q.Recovering)
	}
	// Reporting again changes nothing.
	if _, err := n.ReportDamagedReplica(ctx, "d", 0, follower, DamagedData, 42); err != nil {
		t.Fatal(err)
	}
	if r := partitionOf(n, "d", 0); r.PartitionEpoch != q.PartitionEpoch {
		t.Fatalf("a repeated report bumped the partition epoch: %s", describe(r))
	}

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
