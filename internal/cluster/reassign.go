package cluster

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// Partition reassignment, the Kafka way (KIP-455): the replica set grows to the union of
// the current and the target replicas; the adding replicas fetch from the leader and join
// the ISR through the leader's AlterPartition; once every target replica is in the ISR the
// replica set becomes the target, removed replicas leave the ISR, and a removed leader
// hands over to a target replica of the ISR.

// Reassignment is one partition's reassignment in progress.
type Reassignment struct {
	Topic            string
	Partition        int32
	Replicas         []int32 // the union while it runs
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// Reassignments lists the reassignments in progress, ordered by topic and partition.
func (s *State) Reassignments() []Reassignment {
	var out []Reassignment
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0 {
				out = append(out, Reassignment{Topic: t.Name, Partition: p.ID, Replicas: slices.Clone(p.Replicas),
					AddingReplicas: slices.Clone(p.AddingReplicas), RemovingReplicas: slices.Clone(p.RemovingReplicas)})
			}
		}
	}
	slices.SortFunc(out, func(a, b Reassignment) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// ReassignPartition starts moving a partition to the target replicas (the first is the
// preferred leader). A nil target cancels the reassignment in progress.
func (n *Node) ReassignPartition(ctx context.Context, topic string, partition int32, target []int32) error {
	_, err := n.propose(ctx, "reassign-partition", cmdReassign{Topic: topic, Partition: partition, Target: target})
	return err
}

// UnregisterBroker removes a broker from the cluster (Kafka's UnregisterBroker): it leads
// nothing any more, each of its replicas is reassigned to the live broker holding the
// fewest replicas, and its registration is deleted.
func (n *Node) UnregisterBroker(ctx context.Context, id int32) error {
	_, err := n.propose(ctx, "unregister-broker", cmdUnregisterBroker{ID: id})
	return err
}

// targetOf is the replica order a reassignment ends with.
func targetOf(p *Partition) []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.RemovingReplicas, r) })
}

func reassign(s *State, c cmdReassign) error {
	t, ok := s.Topics[c.Topic]
	if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return fmt.Errorf("%w: %s-%d", ErrUnknownTopic, c.Topic, c.Partition)
	}
	p := clonePartition(t.Partitions[c.Partition])
	if c.Target == nil {
		if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
			return fmt.Errorf("%w: %s-%d", ErrNoReassignment, c.Topic, c.Partition)
		}
		// Cancel: go back to the replicas the partition had before.
		original := slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.AddingReplicas, r) })
		if err := finishReassignment(s, &p, original); err != nil {
			return err
		}
	} else {
		if len(c.Target) == 0 {
			return fmt.Errorf("%w: an empty replica set", ErrInvalidReplicationFactor)
		}
		for i, r := range c.Target {
			if slices.Contains(c.Target[:i], r) {
				return fmt.Errorf("%w: broker %d twice in %v", ErrInvalidRequest, r, c.Target)
			}
			if _, ok := s.Brokers[r]; !ok {
				return fmt.Errorf("%w: %d", ErrUnknownBroker, r)
			}
		}
		current := slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.AddingReplicas, r) })
		p.Replicas = slices.Clone(c.Target)
		p.AddingReplicas, p.RemovingReplicas = nil, nil
		for _, r := range c.Target {
			if !slices.Contains(current, r) {
				p.AddingReplicas = append(p.AddingReplicas, r)
			}
		}
		for _, r := range current {
			if !slices.Contains(c.Target, r) {
				p.Replicas = append(p.Replicas, r)
				p.RemovingReplicas = append(p.RemovingReplicas, r)
			}
		}
		// Replicas dropped by a replaced reassignment leave the ISR too.
		p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return !slices.Contains(p.Replicas, r) })
		p.PartitionEpoch++
		completeReassignment(s, &p)
	}
	nt := t.clone()
	nt.Partitions[c.Partition] = p
	s.Topics[c.Topic] = nt
	return nil
}

// completeReassignment finishes a reassignment once every target replica is in the ISR.
func completeReassignment(s *State, p *Partition) {
	if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
		return
	}
	target := targetOf(p)
	for _, r := range target {
		if !slices.Contains(p.ISR, r) {
			return
		}
	}
	// Cannot fail: the whole target is in the ISR.
	_ = finishReassignment(s, p, target)
}

// finishReassignment makes replicas the partition's replica set, trims the ISR to it and
// elects a new leader from it if the leader left.
func finishReassignment(s *State, p *Partition, replicas []int32) error {
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(replicas, r) })
	if len(isr) == 0 {
		return fmt.Errorf("%w: no replica of %v is in the ISR %v", ErrIneligibleReplica, replicas, p.ISR)
	}
	p.Replicas, p.ISR = replicas, isr
	p.AddingReplicas, p.RemovingReplicas = nil, nil
	p.PartitionEpoch++
	if !slices.Contains(replicas, p.Leader) {
		if next := electFromISR(s, p, -1); next >= 0 {
			setLeader(p, next)
		} else {
			setLeader(p, -1)
		}
	}
	return nil
}

// unregisterBroker moves every replica of broker id elsewhere and deletes its registration.
func unregisterBroker(s *State, id int32) error {
	if _, ok := s.Brokers[id]; !ok {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	b := s.Brokers[id]
	b.Fenced = true
	s.Brokers[id] = b
	moveOff(s, id, true)
	l := loadOf(s)
	var ids []int32
	for _, b := range s.LiveBrokers() {
		ids = append(ids, b.ID)
	}
	type move struct {
		topic     string
		partition int32
		target    []int32
	}
	var moves []move
	names := make([]string, 0, len(s.Topics))
	for name := range s.Topics {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, p := range s.Topics[name].Partitions {
			i := slices.Index(targetOf(&p), id)
			if i < 0 {
				continue
			}
			target := targetOf(&p)
			repl := pickLeast(ids, p.Replicas, func(r int32) [2]int { return [2]int{l.replicas[r], l.leaders[r]} })
			if repl < 0 {
				return fmt.Errorf("%w: no live broker can take %s-%d from %d", ErrInvalidReplicationFactor, name, p.ID, id)
			}
			l.replicas[repl]++
			target[i] = repl
			moves = append(moves, move{name, p.ID, target})
		}
	}
	for _, m := range moves {
		if err := reassign(s, cmdReassign{Topic: m.topic, Partition: m.partition, Target: m.target}); err != nil {
			return err
		}
	}
	delete(s.Brokers, id)
	return nil
}
