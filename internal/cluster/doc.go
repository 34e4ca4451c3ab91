// Package cluster owns the cluster's metadata: brokers, topics, partitions with their
// replicas, leaders, ISRs and leader epochs, topic and broker configs, and the producer-id
// counter. The metadata is a replicated state machine over hashicorp/raft (DESIGN D5):
// every change is a command in the raft log, applied by the FSM in log order on every
// node, and readers see immutable State snapshots swapped in after each apply.
//
// Validation happens inside Apply, so every node reaches the same decision from the same
// log. The package never touches partition data and never imports the wire, broker or
// journal packages.
package cluster
