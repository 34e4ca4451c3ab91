package cluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSingleNodeFullDiskNewProducer (issue 18, item 4): a new producer on a single node whose
// disk is full. Producer ids come in blocks from the metadata log; once a block's write finds
// the disk full, InitProducerId must answer what Kafka's RPCProducerIdManager answers when it
// has no block (COORDINATOR_LOAD_IN_PROGRESS, retried by clients), the node must stay up
// (hashicorp/raft panics when it cannot store a term, which it must do after a failed log
// write makes it step down), the cause must be logged once, not per request, and /metrics must
// show it. Once the disk has room, producers get ids again.
func TestSingleNodeFullDiskNewProducer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a strand process")
	}
	if err := TmpfsSupport(t); err != nil {
		t.Skipf("needs a tmpfs mount: %v", err)
	}
	dir := MountTmpfs(t, "16m")
	c := Start(t, Options{Nodes: 1, DataDirs: map[int]string{0: dir}, BrokerConfigs: knownBrokerConfigs()})
	n := c.Nodes[0]
	// No retries: kgo retries COORDINATOR_LOAD_IN_PROGRESS by itself; the test reads the answer.
	cl := c.Client(t, kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	initPID := func() (*kmsg.InitProducerIDResponse, error) {
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		return kmsg.NewPtrInitProducerIDRequest().RequestWith(rctx, cl)
	}
	filler, err := FillDisk(dir)
	if err != nil {
		t.Fatalf("fill disk: %v", err)
	}
	free, _ := FreeBytes(dir)
	t.Logf("data dir full (%d bytes free)", free)

	// Each block of 1,000 ids is one small metadata entry: the segment's last page takes a few
	// dozen before a write needs a page the disk does not have.
	var resp *kmsg.InitProducerIDResponse
	granted := 0
	deadline := time.Now().Add(90 * time.Second)
	for resp == nil || resp.ErrorCode == 0 {
		if time.Now().After(deadline) || granted > 1_000_000 {
			t.Fatalf("%d producer ids granted on a full disk, and still no error", granted)
		}
		r, err := initPID()
		if err != nil {
			t.Fatalf("InitProducerId after %d ids: %v (node running: %v; log: %v)", granted, err, n.Running(), n.LogLines("panic", "no space"))
		}
		resp = r
		if r.ErrorCode == 0 {
			granted++
		}
	}
	t.Logf("%d producer ids granted on the full disk, then %v", granted, kerr.ErrorForCode(resp.ErrorCode))
	if resp.ErrorCode != kerr.CoordinatorLoadInProgress.Code || resp.ProducerID != -1 {
		t.Fatalf("InitProducerId on a full disk: %v id %d, want COORDINATOR_LOAD_IN_PROGRESS", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID)
	}
	for i := 0; i < 200; i++ {
		r, err := initPID()
		if err != nil {
			t.Fatalf("InitProducerId: %v (node running: %v)", err, n.Running())
		}
		if r.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
			t.Fatalf("request %d on the full disk: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
	}
	if v, err := n.Metric("strand_producer_id_errors_total", `reason="metadata_storage"`); err != nil || v < 201 {
		t.Fatalf("strand_producer_id_errors_total{reason=\"metadata_storage\"} = %v (%v), want >= 201", v, err)
	}
	if v, err := n.Metric("strand_metadata_store_writable"); err != nil || v != 0 {
		t.Fatalf("strand_metadata_store_writable = %v (%v) on a full disk, want 0", v, err)
	}
	if lines := n.LogLines("the disk is full; spent"); len(lines) != 1 {
		t.Fatalf("want the full disk logged once, got %d lines: %v", len(lines), lines)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := initPID()
		if err == nil && r.ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("no producer id after the disk had room again: %v %v", err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v, err := n.Metric("strand_metadata_store_writable"); err != nil || v != 1 {
		t.Fatalf("strand_metadata_store_writable = %v (%v) after the disk had room again, want 1", v, err)
	}
	if !n.Running() {
		t.Fatal("node exited")
	}
}
