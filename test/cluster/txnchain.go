package cluster

import "slices"

// ChainExactlyOnce checks an ETL chain (TxnHistory.Chain: input topic, stages, last topic)
// the way Kafka's transactional copier test does: every record of the input that the final
// read found reaches the last topic exactly once, and the records of one key reach it in
// the order they have in the input (within one input partition: across partitions there
// is no order to keep). A key is the final read's, or else the one its send recorded. A record of the last topic is traced back to its input
// through TxnSend.Source, stage by stage; one that traces back to no committed input
// record (an aborted one, or none) is counted too.
func ChainExactlyOnce(h *TxnHistory) []TxnAnomaly {
	if len(h.Chain) < 2 {
		return nil
	}
	in, last := h.Chain[0], h.Chain[len(h.Chain)-1]
	source, sentKey := map[string]string{}, map[string]string{}
	for _, t := range h.Txns {
		for _, s := range t.Sends {
			if _, seen := source[s.Value]; !seen {
				source[s.Value], sentKey[s.Value] = s.Source, s.Key
			}
		}
	}
	type orderKey struct {
		partition int32 // of the input
		key       string
	}
	keyOf := func(input TxnRead) orderKey {
		if input.Key == "" {
			return orderKey{input.Partition, sentKey[input.Value]}
		}
		return orderKey{input.Partition, input.Key}
	}
	inputs, outputs := finalOf(h, in), finalOf(h, last)
	rank := make(map[string]int, len(inputs)) // input value → its place in the input
	for i, r := range inputs {
		rank[r.Value] = i
	}

	var out []TxnAnomaly
	copies := map[string][]TxnRead{} // input value → the records of the last topic made from it
	lastRank := map[orderKey]int{}   // key → rank of the newest input of that key seen in the last topic
	for _, r := range outputs {
		root, found := r.Value, false
		for range h.Chain {
			if _, found = rank[root]; found || root == "" {
				break
			}
			root = source[root]
		}
		if !found {
			out = append(out, anomalyAt(r, "%s traces back to no committed record of %s", r.Value, in))
			continue
		}
		copies[root] = append(copies[root], r)
		if len(copies[root]) > 1 {
			continue // a duplicate, counted below, is not also out of order
		}
		input := inputs[rank[root]]
		if prev, seen := lastRank[keyOf(input)]; seen && rank[root] < prev {
			out = append(out, anomalyAt(r, "%s (from %s, key %q) after the copy of %s, which follows it in %s",
				r.Value, root, keyOf(input).key, inputs[prev].Value, in))
			continue
		}
		lastRank[keyOf(input)] = rank[root]
	}
	for _, r := range inputs {
		cs := copies[r.Value]
		switch {
		case len(cs) == 0:
			out = append(out, anomalyAt(r, "%s never reached %s", r.Value, last))
		case len(cs) > 1:
			for _, c := range cs[1:] {
				out = append(out, anomalyAt(c, "%s reached %s again (first as %s at %s/%d@%d)",
					r.Value, last, cs[0].Value, cs[0].Topic, cs[0].Partition, cs[0].Offset))
			}
		}
	}
	sortTxnAnomalies(out)
	return out
}

// finalOf is the final read of topic, in partition and offset order.
func finalOf(h *TxnHistory, topic string) []TxnRead {
	var rs []TxnRead
	for _, r := range h.Final {
		if r.Topic == topic {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b TxnRead) int {
		if a.Partition != b.Partition {
			return compareInt64(int64(a.Partition), int64(b.Partition))
		}
		return compareInt64(a.Offset, b.Offset)
	})
	return rs
}

// chainLength is how many records of the chain's input the final read found.
func chainLength(h *TxnHistory) int {
	if len(h.Chain) < 2 {
		return 0
	}
	return len(finalOf(h, h.Chain[0]))
}
