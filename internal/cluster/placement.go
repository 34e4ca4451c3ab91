package cluster

import (
	"fmt"
	"slices"
)

// load counts, per broker, the partitions it leads and the replicas it holds.
type load struct {
	leaders  map[int32]int
	replicas map[int32]int
}

func loadOf(s *State) load {
	l := load{leaders: map[int32]int{}, replicas: map[int32]int{}}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if p.Leader >= 0 {
				l.leaders[p.Leader]++
			}
			for _, r := range p.Replicas {
				l.replicas[r]++
			}
		}
	}
	return l
}

// place assigns replicas for count new partitions numbered from first, over the live
// brokers of s. Each partition's replicas are on distinct brokers; its leader (the first
// replica) is the broker leading the fewest partitions, its followers the brokers holding
// the fewest replicas, ties broken by broker id (for followers: by distance from the leader
// in id order). The answer depends only on s, so it can
// run inside Apply and every node places the same way.
func place(s *State, first, count int32, rf int16) ([]Partition, error) {
	live := s.LiveBrokers()
	if rf <= 0 || int(rf) > len(live) {
		return nil, fmt.Errorf("%w: %d, with %d live brokers", ErrInvalidReplicationFactor, rf, len(live))
	}
	l := loadOf(s)
	ids := make([]int32, len(live))
	for i, b := range live {
		ids[i] = b.ID
	}
	out := make([]Partition, 0, count)
	for p := first; p < first+count; p++ {
		leader := pickLeast(ids, nil, func(id int32) [2]int { return [2]int{l.leaders[id], l.replicas[id]} })
		at := slices.Index(ids, leader)
		replicas := []int32{leader}
		for len(replicas) < int(rf) {
			// Among the least loaded, the next broker after the leader in id order, so
			// that followers rotate with the leaders instead of piling on low ids.
			replicas = append(replicas, pickLeast(ids, replicas, func(id int32) [2]int {
				return [2]int{l.replicas[id], (slices.Index(ids, id) - at + len(ids)) % len(ids)}
			}))
		}
		l.leaders[leader]++
		for _, r := range replicas {
			l.replicas[r]++
		}
		out = append(out, Partition{ID: p, Leader: leader, Replicas: replicas, ISR: slices.Clone(replicas)})
	}
	return out, nil
}

// pickLeast returns the id not in exclude with the smallest key, the lowest id on ties.
// ids is sorted and has at least one id outside exclude.
func pickLeast(ids, exclude []int32, key func(int32) [2]int) int32 {
	best, bestKey := int32(-1), [2]int{}
	for _, id := range ids {
		if slices.Contains(exclude, id) {
			continue
		}
		k := key(id)
		if best < 0 || k[0] < bestKey[0] || (k[0] == bestKey[0] && k[1] < bestKey[1]) {
			best, bestKey = id, k
		}
	}
	return best
}
