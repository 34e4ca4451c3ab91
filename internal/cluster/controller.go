package cluster

import (
	"fmt"
	"slices"
)

// The controller's decisions about leaders and ISRs. They run inside Apply on a State the
// FSM is building, so every node reaches the same leaders from the same log; the raft
// leader only decides *when* to propose (liveness.go), never *what* the outcome is.

// editPartitions calls edit on a copy of every partition and stores back the topics whose
// partitions changed. edit reports whether it changed the partition.
func editPartitions(s *State, edit func(t *Topic, p *Partition) bool) {
	for name, t := range s.Topics {
		var copied *Topic
		for i := range t.Partitions {
			p := clonePartition(t.Partitions[i])
			if !edit(t, &p) {
				continue
			}
			if copied == nil {
				copied = t.clone()
			}
			copied.Partitions[i] = p
		}
		if copied != nil {
			s.Topics[name] = copied
		}
	}
}

func clonePartition(p Partition) Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	p.AddingReplicas = slices.Clone(p.AddingReplicas)
	p.RemovingReplicas = slices.Clone(p.RemovingReplicas)
	p.Recovering = slices.Clone(p.Recovering)
	return p
}

// uncleanAllowed reads the topic's unclean.leader.election.enable.
func uncleanAllowed(s *State, topic string) bool {
	v, _, _ := s.TopicConfig(topic, "unclean.leader.election.enable")
	return v == "true"
}

// electFromISR picks the first ISR member, in replica order, that is live, not recovering
// from damage and not except.
func electFromISR(s *State, p *Partition, except int32) int32 {
	for _, r := range p.Replicas {
		if r != except && slices.Contains(p.ISR, r) && eligible(s, p, r) {
			return r
		}
	}
	return -1
}

// setLeader makes id the leader, bumping both epochs.
func setLeader(p *Partition, id int32) {
	p.Leader = id
	p.LeaderEpoch++
	p.PartitionEpoch++
}

// moveOff takes leadership and ISR membership away from broker id, which has been fenced
// (gone: its partitions go offline when no other ISR member is live) or is shutting down
// (still serving: it keeps what nobody else in the ISR can take over).
func moveOff(s *State, id int32, fenced bool) {
	editPartitions(s, func(t *Topic, p *Partition) bool {
		switch {
		case p.Leader == id:
			if next := electFromISR(s, p, id); next >= 0 {
				setLeader(p, next)
				p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return r == id })
				return true
			}
			if !fenced {
				return false
			}
			if uncleanAllowed(s, t.Name) {
				if next := firstLive(s, p, id); next >= 0 {
					setLeader(p, next)
					p.ISR = []int32{next}
					return true
				}
			}
			// Offline: the ISR keeps its members so that only one of them may lead again.
			setLeader(p, -1)
			return true
		case p.Leader >= 0 && slices.Contains(p.ISR, id) && len(p.ISR) > 1:
			p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return r == id })
			p.PartitionEpoch++
			return true
		}
		return false
	})
}

// fenceFollower starts a new leader epoch in every partition broker id follows, for a
// broker whose logs may have lost records since its last fetch (a restart with fsync other
// than always): a fetch its previous run left long-polling at the leader, counted after
// its ISR place went, would add it back as caught up from a log end it no longer has. The
// fetch carries the old epoch, and the leader fences it.
func fenceFollower(s *State, id int32) {
	editPartitions(s, func(t *Topic, p *Partition) bool {
		if p.Leader < 0 || p.Leader == id || !slices.Contains(p.Replicas, id) {
			return false
		}
		setLeader(p, p.Leader) // the same leader at a new epoch
		return true
	})
}

// firstLive picks the first live replica of p that is not recovering from damage and not
// except, for an unclean election: a replica known damaged is worse than any other.
func firstLive(s *State, p *Partition, except int32) int32 {
	for _, r := range p.Replicas {
		if r != except && eligible(s, p, r) {
			return r
		}
	}
	return -1
}

// electOffline gives offline partitions a leader where one is allowed: a live ISR member,
// or with unclean.leader.election.enable any live replica (which then is the whole ISR).
func electOffline(s *State) {
	editPartitions(s, func(t *Topic, p *Partition) bool {
		if !p.Offline() {
			return false
		}
		if next := electFromISR(s, p, -1); next >= 0 {
			setLeader(p, next)
			return true
		}
		if uncleanAllowed(s, t.Name) {
			if next := firstLive(s, p, -1); next >= 0 {
				setLeader(p, next)
				p.ISR = []int32{next}
				return true
			}
		}
		return false
	})
}

// setBrokerState fences, unfences or marks a broker as shutting down, and moves leaders.
func setBrokerState(s *State, c cmdBrokerState) error {
	b, ok := s.Brokers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, c.ID)
	}
	b.Fenced, b.ShuttingDown = c.Fenced, c.ShuttingDown
	s.Brokers[c.ID] = b
	if !b.Live() {
		moveOff(s, c.ID, c.Fenced)
	}
	electOffline(s)
	return nil
}

// alterPartition applies a leader's ISR change (Kafka's AlterPartition).
func alterPartition(s *State, c cmdAlterPartition) (Partition, error) {
	t, ok := s.Topics[c.Topic]
	if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return Partition{}, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, c.Topic, c.Partition)
	}
	p := clonePartition(t.Partitions[c.Partition])
	if p.Leader != c.LeaderID || p.LeaderEpoch != c.LeaderEpoch {
		return Partition{}, fmt.Errorf("%w: %s-%d is led by %d in epoch %d, not %d in epoch %d",
			ErrStaleLeaderEpoch, c.Topic, c.Partition, p.Leader, p.LeaderEpoch, c.LeaderID, c.LeaderEpoch)
	}
	if p.PartitionEpoch != c.PartitionEpoch {
		return Partition{}, fmt.Errorf("%w: %s-%d is at partition epoch %d, not %d", ErrStalePartitionEpoch, c.Topic, c.Partition, p.PartitionEpoch, c.PartitionEpoch)
	}
	if !slices.Contains(c.ISR, c.LeaderID) {
		return Partition{}, fmt.Errorf("%w: the ISR must hold the leader %d", ErrIneligibleReplica, c.LeaderID)
	}
	var isr []int32
	for _, r := range c.ISR {
		switch {
		case slices.Contains(isr, r):
			return Partition{}, fmt.Errorf("%w: %d twice in the ISR", ErrIneligibleReplica, r)
		case !slices.Contains(p.Replicas, r):
			return Partition{}, fmt.Errorf("%w: %d is not a replica of %s-%d", ErrIneligibleReplica, r, c.Topic, c.Partition)
		case !slices.Contains(p.ISR, r) && !s.live(r):
			return Partition{}, fmt.Errorf("%w: %d is fenced or shutting down", ErrIneligibleReplica, r)
		}
		isr = append(isr, r)
	}
	p.ISR = isr
	p.PartitionEpoch++
	clearRecovering(&p) // the leader saw a recovering replica catch up
	completeReassignment(s, &p)
	nt := t.clone()
	nt.Partitions[c.Partition] = p
	s.Topics[c.Topic] = nt
	return p, nil
}

// preferredLeaderMovable reports whether a partition's preferred replica (the first) could
// take over: it is live and in the ISR, and no reassignment is changing the replicas.
func preferredLeaderMovable(s *State, p *Partition) bool {
	if len(p.Replicas) == 0 || len(p.AddingReplicas)+len(p.RemovingReplicas) > 0 {
		return false
	}
	preferred := p.Replicas[0]
	return p.Leader != preferred && slices.Contains(p.ISR, preferred) && eligible(s, p, preferred)
}

// electPreferred gives every partition whose preferred replica can lead back to it (Kafka's
// preferred leader election), and answers how many moved.
func electPreferred(s *State) int {
	moved := 0
	editPartitions(s, func(t *Topic, p *Partition) bool {
		if !preferredLeaderMovable(s, p) {
			return false
		}
		setLeader(p, p.Replicas[0])
		moved++
		return true
	})
	return moved
}
