package cluster

import (
	"cmp"
	"context"
	"slices"
)

// Operator-requested leader elections (Kafka's ElectLeaders): preferred gives a partition
// back to its first replica when that replica is live and in the ISR; unclean gives an
// offline partition any live replica, which then is the whole ISR and may lack
// acknowledged records.

// ElectionOutcome is what an election did to one partition.
type ElectionOutcome int8

const (
	Elected            ElectionOutcome = iota
	ElectionNotNeeded                  // the preferred replica leads, or (unclean) a leader exists
	LeaderNotAvailable                 // no replica may lead
	UnknownPartition
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ElectionResult is one partition's outcome.
type ElectionResult struct {
	TopicPartition
	Outcome ElectionOutcome
}

type cmdElectLeaders struct {
	Unclean    bool
	Partitions []TopicPartition // nil: every partition that needs it
}

// ElectLeaders runs a preferred (or, with unclean, an unclean) leader election for the
// given partitions, or for every partition that needs one when partitions is nil.
func (n *Node) ElectLeaders(ctx context.Context, unclean bool, partitions []TopicPartition) ([]ElectionResult, error) {
	v, err := n.propose(ctx, "elect-leaders", cmdElectLeaders{Unclean: unclean, Partitions: partitions})
	if err != nil {
		return nil, err
	}
	return valueAs[[]ElectionResult](v)
}

func electLeaders(s *State, c cmdElectLeaders) []ElectionResult {
	var out []ElectionResult
	done := map[TopicPartition]bool{}
	editPartitions(s, func(t *Topic, p *Partition) bool {
		tp := TopicPartition{t.Name, p.ID}
		if c.Partitions != nil && !slices.Contains(c.Partitions, tp) {
			return false
		}
		done[tp] = true
		outcome := electOne(s, p, c.Unclean)
		if c.Partitions != nil || outcome != ElectionNotNeeded {
			out = append(out, ElectionResult{tp, outcome})
		}
		return outcome == Elected
	})
	for _, tp := range c.Partitions {
		if !done[tp] {
			out = append(out, ElectionResult{tp, UnknownPartition})
		}
	}
	slices.SortFunc(out, func(a, b ElectionResult) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

func electOne(s *State, p *Partition, unclean bool) ElectionOutcome {
	if unclean {
		if !p.Offline() {
			return ElectionNotNeeded
		}
		if next := electFromISR(s, p, -1); next >= 0 {
			setLeader(p, next)
			return Elected
		}
		if next := firstLive(s, p, -1); next >= 0 {
			setLeader(p, next)
			p.ISR = []int32{next}
			return Elected
		}
		return LeaderNotAvailable
	}
	if len(p.Replicas) > 0 && p.Leader == p.Replicas[0] {
		return ElectionNotNeeded
	}
	if !preferredLeaderMovable(s, p) {
		return LeaderNotAvailable
	}
	setLeader(p, p.Replicas[0])
	return Elected
}
