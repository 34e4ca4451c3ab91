package cluster

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newMetaTransport is the metadata log's TCP transport between voters, with pipelined
// replication turned off (MaxRPCsInFlight 1: every AppendEntries waits for its answer).
//
// hashicorp/raft v1.8.0's pipeline can deadlock. When a follower answers Success=false,
// pipelineDecode returns; the send loop may still pick a trigger and send once more, which
// parks on the pipeline's in-progress channel while the decoder parks on its done channel,
// and pipeline.Close, deferred in the stuck loop, never runs. Replication to that follower
// then stops for good while heartbeats go on, and Raft.Shutdown waits forever: a
// TestPowerLossOfEveryNode run hung in Node.Close with exactly these goroutines. Raft's own
// measurements (hashicorp/raft#541) found pipelining brings little beyond batching.
func newMetaTransport(addr string, logger hclog.Logger) (*raft.NetworkTransport, error) {
	return raft.NewTCPTransportWithConfig(addr, nil, &raft.NetworkTransportConfig{
		MaxPool:         3,
		Timeout:         5 * time.Second,
		Logger:          logger,
		MaxRPCsInFlight: 1,
	})
}
