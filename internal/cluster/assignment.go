package cluster

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidReplicaAssignment refuses a manual replica assignment (CreateTopics,
// CreatePartitions) that Kafka's controller would refuse.
var ErrInvalidReplicaAssignment = errors.New("invalid replica assignment")

// manualPartitions turns a manual replica assignment for partitions first, first+1, … into
// partitions, checking it as Kafka's controller does
// (ReplicationControlManager.validateManualPartitionAssignment, metadata/…/controller): no
// partition without replicas, no broker twice in one partition, every broker registered, and
// every partition with rf replicas (rf < 0: as many as the first one). The ISR is the
// replicas that are live, in the order given, and the first of them leads; a partition
// with none live is refused. The answer depends only on s, so Apply can check it again.
func manualPartitions(s *State, first int32, assignment [][]int32, rf int) ([]Partition, error) {
	out := make([]Partition, 0, len(assignment))
	for i, replicas := range assignment {
		id := first + int32(i)
		if len(replicas) == 0 {
			return nil, fmt.Errorf("%w: The manual partition assignment includes an empty replica list", ErrInvalidReplicaAssignment)
		}
		sorted := slices.Sorted(slices.Values(replicas))
		for j, r := range sorted {
			if _, ok := s.Brokers[r]; !ok {
				return nil, fmt.Errorf("%w: The manual partition assignment includes broker %d, but no such broker is registered", ErrInvalidReplicaAssignment, r)
			}
			if j > 0 && sorted[j-1] == r {
				return nil, fmt.Errorf("%w: The manual partition assignment includes the broker %d more than once", ErrInvalidReplicaAssignment, r)
			}
		}
		if rf < 0 {
			rf = len(replicas)
		}
		if len(replicas) != rf {
			return nil, fmt.Errorf("%w: The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s)",
				ErrInvalidReplicaAssignment, len(replicas), rf)
		}
		var isr []int32
		for _, r := range replicas {
			if s.live(r) {
				isr = append(isr, r)
			}
		}
		if len(isr) == 0 {
			return nil, fmt.Errorf("%w: All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown", ErrInvalidReplicaAssignment, id)
		}
		out = append(out, Partition{ID: id, Leader: isr[0], Replicas: slices.Clone(replicas), ISR: isr})
	}
	return out, nil
}

// replicaLists is the replica list of each partition.
func replicaLists(parts []Partition) [][]int32 {
	out := make([][]int32, len(parts))
	for i, p := range parts {
		out[i] = p.Replicas
	}
	return out
}
