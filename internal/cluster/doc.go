// Package cluster owns the cluster's metadata: brokers, topics, partitions with their
// replicas, leaders, ISRs and leader epochs, topic and broker configs, and the producer-id
// counter. The metadata is a replicated state machine over hashicorp/raft (DESIGN D5):
// every change is a command in the raft log, applied by the FSM in log order on every
// node, and readers see immutable State snapshots swapped in after each apply.
//
// Any node may propose: the raft leader applies a command itself, any other node forwards
// it to the leader's HTTP listener (forward.go, http.go); errors keep their sentinel across
// the hop. The raft leader is also the controller: it tracks broker heartbeats and fences
// silent brokers (liveness.go). The controller's decisions — replica placement
// (placement.go), ISR-only leader elections, ISR changes, controlled shutdown
// (controller.go), reassignments (reassign.go) and preferred leader elections
// (preferred.go) — are made inside Apply, so every node reaches the same decision from
// the same log; the leader only decides when to propose.
//
// The raft log, stable keys and snapshots live in meta/store through the vfs seam
// (raftstore, metastore.go), every record and file checksummed. A node that finds its store
// damaged, or finds it gone after it once belonged to a cluster, moves the evidence aside,
// never bootstraps again, and refuses every vote (voteguard.go) until it has caught up with
// a leader (rebuild.go). Stores of older versions (raft-boltdb) are imported once
// (migrate.go).
//
// The package never touches partition data and never imports the wire, broker or
// journal packages.
package cluster
