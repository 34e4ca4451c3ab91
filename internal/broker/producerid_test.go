package broker

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/vfs"
)

// TestInitProducerIDOnFullMetadataDisk: when the disk under the metadata log fills up, a
// new producer is told COORDINATOR_LOAD_IN_PROGRESS, as Kafka's RPCProducerIdManager
// (generateProducerId, apache/kafka transaction-coordinator) answers whenever it has no
// producer-id block, which clients retry, and not NOT_CONTROLLER, KAFKA_STORAGE_ERROR or a
// timeout after 10 s. The metadata store spends its reserve on the write that found the
// disk full, so raft goes on (hashicorp/raft panics when it cannot store a term), and
// refuses further producer-id blocks until it can write its reserve again; /metrics shows
// both. test/cluster's TestSingleNodeFullDiskNewProducer does the same on a real full tmpfs.
func TestInitProducerIDOnFullMetadataDisk(t *testing.T) {
	oldProbe := raftstore.ProbeInterval
	raftstore.ProbeInterval = 50 * time.Millisecond
	t.Cleanup(func() { raftstore.ProbeInterval = oldProbe })
	disk := vfs.NewFaulty(vfs.OS{})
	c := startClusterWith(t, 1, func(i int, cfg *Config) { cfg.FS = disk })
	b := c.brokers[0]
	// No retries: kgo retries COORDINATOR_LOAD_IN_PROGRESS by itself, and the test reads
	// the broker's answer.
	cl := c.client(kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	initPID := func() *kmsg.InitProducerIDResponse {
		t.Helper()
		start := time.Now()
		resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("InitProducerId: %v, id %d, after %v", kerr.ErrorForCode(resp.ErrorCode), resp.ProducerID, time.Since(start).Round(time.Millisecond))
		return resp
	}
	needBlock := func() {
		b.pidMu.Lock()
		b.pidNext = b.pidEnd
		b.pidMu.Unlock()
	}
	if r := initPID(); r.ErrorCode != 0 {
		t.Fatalf("healthy: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// The disk fills: the next metadata log write fails with ENOSPC. The reserve's space
	// lets that write through, and the store is then unhealthy until the reserve is back;
	// the failure stays in place until the test clears it.
	storeDir := filepath.Join(c.cfgs[0].DataDir, "meta", "store") + string(filepath.Separator)
	disk.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: storeDir + "log-", Err: syscall.ENOSPC, Times: 1})
	disk.Inject(vfs.Rule{Ops: vfs.OpWrite | vfs.OpOpen, Path: storeDir + "reserve", Err: syscall.ENOSPC})
	needBlock()
	if r := initPID(); r.ErrorCode != 0 {
		t.Fatalf("the write that found the disk full should have used the reserve: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if disk.Fired() < 1 {
		t.Fatal("the injected ENOSPC never fired")
	}
	needBlock()
	r := initPID()
	if r.ErrorCode != kerr.CoordinatorLoadInProgress.Code || r.ProducerID != -1 {
		t.Fatalf("on a full disk: %v id %d, want COORDINATOR_LOAD_IN_PROGRESS", kerr.ErrorForCode(r.ErrorCode), r.ProducerID)
	}
	if v := testutil.ToFloat64(b.metrics.producerIDErr.WithLabelValues("metadata_storage")); v != 1 {
		t.Fatalf("strand_producer_id_errors_total{reason=metadata_storage} = %v, want 1", v)
	}
	if v := metaWritable(t, b); v != 0 {
		t.Fatalf("strand_metadata_store_writable = %v on a full disk", v)
	}
	// The other metadata writes clients ask for say what is wrong without blaming a
	// partition's disk where Kafka would not: a topic a Metadata request would auto-create is
	// UNKNOWN_TOPIC_OR_PARTITION (DefaultAutoTopicCreationManager's answer while a creation is
	// under way), and CreateTopics names the metadata log in its message.
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("auto-on-full-disk")
	meta.Topics, meta.AllowAutoTopicCreation = append(meta.Topics, mt), true
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("auto-create on a full metadata disk: %+v, want UNKNOWN_TOPIC_OR_PARTITION", mresp.Topics)
	}
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "created-on-full-disk", 1, 1
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if r := cresp.Topics[0]; r.ErrorCode != kerr.KafkaStorageError.Code || r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, "metadata log cannot be written") {
		t.Fatalf("CreateTopics on a full metadata disk: %v %v", kerr.ErrorForCode(r.ErrorCode), strPtr(r.ErrorMessage))
	}

	// Space is back: the store makes its reserve again and producers get ids.
	disk.Clear()
	deadline := time.Now().Add(20 * time.Second)
	for {
		needBlock()
		if r := initPID(); r.ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no producer id 20 s after the disk had room again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := metaWritable(t, b); v != 1 {
		t.Fatalf("strand_metadata_store_writable = %v after the disk had room again", v)
	}
}

// metaWritable reads strand_metadata_store_writable from the broker's collector.
func metaWritable(t *testing.T, b *Broker) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1000)
	go func() { (&partitionCollector{b: b}).Collect(ch); close(ch) }()
	v := -1.0
	for m := range ch {
		if m.Desc() == descMetaWrite {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			v = pb.GetGauge().GetValue()
		}
	}
	return v
}
