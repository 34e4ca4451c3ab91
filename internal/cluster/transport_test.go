package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestMetaTransportDoesNotPipeline: the metadata transport refuses pipelined replication,
// so raft replicates with one AppendEntries at a time (see newMetaTransport for the
// deadlock this avoids).
func TestMetaTransportDoesNotPipeline(t *testing.T) {
	trans, err := newMetaTransport("127.0.0.1:0", hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	if _, err := trans.AppendEntriesPipeline("peer", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: %v, want ErrPipelineReplicationNotSupported", err)
	}
}
