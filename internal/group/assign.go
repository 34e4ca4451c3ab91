package group

import (
	"slices"
	"sort"
)

// assignUniform is the "uniform" server-side assignor: every partition of a subscribed
// topic goes to one member subscribed to it, members end within one partition of each
// other where their subscriptions allow, and partitions stay where they were (prev)
// unless balance requires a move. subs is each member's existing subscribed topics,
// counts each such topic's partition count.
func assignUniform(subs map[string][]string, counts map[string]int32, prev map[string]partitions) map[string]partitions {
	members := sortedKeys(subs)
	out := make(map[string]partitions, len(members))
	load := map[string]int{}
	owner := map[tp]string{}
	for _, id := range members {
		out[id] = partitions{}
	}
	// Keep what each member had, where it still subscribes and the partition still exists.
	for _, id := range members {
		for t, ps := range prev[id] {
			if !slices.Contains(subs[id], t) {
				continue
			}
			for _, p := range ps {
				if p < counts[t] && owner[tp{t, p}] == "" {
					owner[tp{t, p}] = id
					load[id]++
				}
			}
		}
	}
	// Hand out the rest, each to the least loaded member that subscribes to its topic.
	for _, t := range sortedKeys(counts) {
		for p := int32(0); p < counts[t]; p++ {
			if owner[tp{t, p}] != "" {
				continue
			}
			best := ""
			for _, id := range members {
				if slices.Contains(subs[id], t) && (best == "" || load[id] < load[best]) {
					best = id
				}
			}
			if best != "" {
				owner[tp{t, p}] = best
				load[best]++
			}
		}
	}
	// Balance: move one partition at a time from the most to the least loaded member
	// that can take it, until no move narrows the gap. Bounded: each move lowers the
	// sum of squared loads.
	keys := make([]tp, 0, len(owner))
	for k := range owner {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	for moved := true; moved; {
		moved = false
		byLoad := slices.Clone(members)
		sort.SliceStable(byLoad, func(i, j int) bool { return load[byLoad[i]] > load[byLoad[j]] })
	search:
		for _, from := range byLoad {
			for i := len(byLoad) - 1; i >= 0; i-- {
				to := byLoad[i]
				if load[from]-load[to] <= 1 {
					break
				}
				for _, k := range keys {
					if owner[k] == from && slices.Contains(subs[to], k.topic) {
						owner[k] = to
						load[from]--
						load[to]++
						moved = true
						break search
					}
				}
			}
		}
	}
	for _, k := range keys {
		id := owner[k]
		out[id][k.topic] = append(out[id][k.topic], k.partition)
	}
	return out
}

// assignRange is the "range" server-side assignor: for each topic, the members
// subscribed to it (by id) take contiguous ranges, the first ones one more when the
// partitions do not divide evenly. Members subscribed to the same topics with the same
// partition counts get the same partition numbers of each, for co-partitioned joins.
func assignRange(subs map[string][]string, counts map[string]int32) map[string]partitions {
	out := make(map[string]partitions, len(subs))
	for id := range subs {
		out[id] = partitions{}
	}
	for _, t := range sortedKeys(counts) {
		var members []string
		for _, id := range sortedKeys(subs) {
			if slices.Contains(subs[id], t) {
				members = append(members, id)
			}
		}
		if len(members) == 0 {
			continue
		}
		n, m := int(counts[t]), len(members)
		start := 0
		for i, id := range members {
			size := n / m
			if i < n%m {
				size++
			}
			for p := start; p < start+size; p++ {
				out[id][t] = append(out[id][t], int32(p))
			}
			start += size
		}
	}
	return out
}

type tp = topicPartition

func (a topicPartition) less(b topicPartition) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.partition < b.partition
}
