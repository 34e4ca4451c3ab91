package cluster

import (
	"context"
	"fmt"
	"slices"
)

// Damaged replicas (issue 8). A broker that finds its copy of a partition damaged below its
// log end (a bad CRC, a file cut short, a failed disk) reports it here. The replica leaves
// the ISR and, if it led, another ISR member takes over; it is marked Recovering so that no
// election picks it until its leader has seen it catch up and added it back to the ISR
// (alterPartition clears the mark). When it is the only ISR member it stays: nothing better
// exists, and taking the partition offline would lose availability without saving data.

// DamageReason says why a replica was reported.
type DamageReason string

const (
	// DamagedData: bytes below the log end failed validation or went missing; the replica
	// truncates and re-fetches.
	DamagedData DamageReason = "damaged"
	// StorageFailed: the disk failed (an I/O error on write, fsync or read); the replica
	// stays offline on its node until the broker restarts.
	StorageFailed DamageReason = "storage-failed"
	// DiskFull: appends keep failing with ENOSPC; the replica gives up leadership and
	// rejoins when it can copy from the new leader again.
	DiskFull DamageReason = "disk-full"
)

type cmdReplicaDamaged struct {
	Topic     string
	Partition int32
	Broker    int32
	Reason    DamageReason
	From      int64 // first damaged offset, for the log; -1 when unknown
}

// DamageOutcome is what the controller did with a damage report.
type DamageOutcome struct {
	// Removed: the replica left the ISR (or was already out of it) and is marked Recovering.
	Removed bool
	// Partition is the partition as it now is.
	Partition Partition
}

// ReportDamagedReplica tells the controller that broker's replica of topic-partition is
// damaged from offset from (-1: unknown). Any node may call it; it is forwarded like
// AlterPartition. Every report that removes the replica starts a new leader epoch, even
// when the replica was already out of the ISR and marked Recovering (see replicaDamaged).
func (n *Node) ReportDamagedReplica(ctx context.Context, topic string, partition, broker int32, reason DamageReason, from int64) (DamageOutcome, error) {
	v, err := n.propose(ctx, "replica-damaged", cmdReplicaDamaged{Topic: topic, Partition: partition, Broker: broker, Reason: reason, From: from})
	if err != nil {
		return DamageOutcome{}, err
	}
	return valueAs[DamageOutcome](v)
}

// replicaDamaged applies a damage report.
func replicaDamaged(s *State, c cmdReplicaDamaged) (DamageOutcome, error) {
	t, ok := s.Topics[c.Topic]
	if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return DamageOutcome{}, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, c.Topic, c.Partition)
	}
	p := clonePartition(t.Partitions[c.Partition])
	if !slices.Contains(p.Replicas, c.Broker) {
		return DamageOutcome{}, fmt.Errorf("%w: %d is not a replica of %s-%d", ErrIneligibleReplica, c.Broker, c.Topic, c.Partition)
	}
	inISR := slices.Contains(p.ISR, c.Broker)
	if inISR && len(p.ISR) == 1 {
		// The only in-sync copy: keep it; its broker refuses the damaged range.
		return DamageOutcome{Removed: false, Partition: p}, nil
	}
	if !slices.Contains(p.Recovering, c.Broker) {
		p.Recovering = append(p.Recovering, c.Broker)
	}
	p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return r == c.Broker })
	// A new leader epoch even when the leader stays: it fences the fetches the damaged
	// replica sent before it truncates. Such a fetch, long-polling at the leader, carries
	// the fetch offset of the log as it was; counted after the ISR shrank, it would add the
	// replica back as caught up while the replica cuts its log below the high watermark,
	// and a later election could then pick the short copy. Every report bumps it, since
	// every report is followed by a truncation.
	next := p.Leader
	if next == c.Broker {
		// The rest of the ISR holds every committed record; one of them leads, or nobody
		// does until one is live again (never the damaged replica).
		next = electFromISR(s, &p, c.Broker)
	}
	setLeader(&p, next)
	nt := t.clone()
	nt.Partitions[c.Partition] = p
	s.Topics[c.Topic] = nt
	return DamageOutcome{Removed: true, Partition: p}, nil
}

// eligible reports whether replica r may be elected leader of p: it is live and not
// recovering from damage.
func eligible(s *State, p *Partition, r int32) bool {
	return s.live(r) && !slices.Contains(p.Recovering, r)
}

// clearRecovering drops the Recovering mark of replicas that are in the ISR again.
func clearRecovering(p *Partition) {
	if len(p.Recovering) == 0 {
		return
	}
	p.Recovering = slices.DeleteFunc(p.Recovering, func(r int32) bool { return slices.Contains(p.ISR, r) || !slices.Contains(p.Replicas, r) })
	if len(p.Recovering) == 0 {
		p.Recovering = nil
	}
}
