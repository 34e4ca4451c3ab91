package broker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// repairFixture is a 3-node cluster with one RF 3 partition of small segments and
// acknowledged records in it.
type repairFixture struct {
	t     *testing.T
	c     *testCluster
	ctx   context.Context
	topic string
	prod  *kgo.Client
	acked map[string]bool
	disks []*vfs.Faulty // each node's file system, to fail on demand
}

func newRepairFixture(t *testing.T, topic string) *repairFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	oldIdle, oldRetry := scrubIdle, repairRetry
	scrubIdle, repairRetry = 50*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { scrubIdle, repairRetry = oldIdle, oldRetry })
	disks := []*vfs.Faulty{vfs.NewFaulty(vfs.OS{}), vfs.NewFaulty(vfs.OS{}), vfs.NewFaulty(vfs.OS{})}
	c := startClusterWith(t, 3, func(i int, cfg *Config) { cfg.FS = disks[i] })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	adm := kadm.NewClient(c.client())
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2"),
		"segment.bytes": kadm.StringPtr("1024")}, topic); err != nil {
		t.Fatal(err)
	}
	f := &repairFixture{t: t, c: c, ctx: ctx, topic: topic, acked: map[string]bool{}, disks: disks,
		prod: c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(100))}
	f.produce(0, 150)
	return f
}

// failWrites makes every write to node's files of partition 0 fail with err until the
// returned function is called.
func (f *repairFixture) failWrites(node int32, err error) (restore func()) {
	disk := f.disks[node-1]
	disk.Inject(vfs.Rule{Ops: vfs.OpWrite, Path: filepath.Join(f.c.cfgs[node-1].DataDir, f.topic+"-0") + string(filepath.Separator), Err: err})
	return disk.Clear
}

func (f *repairFixture) produce(from, n int) {
	f.t.Helper()
	for i := from; i < from+n; i++ {
		v := fmt.Sprintf("record-%04d-with-some-padding", i)
		if _, err := f.prod.ProduceSync(f.ctx, &kgo.Record{Value: []byte(v)}).First(); err != nil {
			f.t.Fatalf("produce %d: %v", i, err)
		}
		f.acked[v] = true
	}
}

// leader is the partition's leader as node 'from' sees it.
func (f *repairFixture) leader(from int) int32 {
	return f.c.brokers[from].meta.State().Topics[f.topic].Partitions[0].Leader
}

func (f *repairFixture) replica(node int32) *partition.Partition {
	p, ok := f.c.brokers[node-1].partition(f.topic, 0)
	if !ok {
		f.t.Fatalf("node %d holds no replica", node)
	}
	return p
}

// waitFor polls cond until it holds or fails the test after 30 seconds.
func (f *repairFixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// damage flips a byte inside the records of the first batch of node's second segment,
// as a bad disk would, and returns that batch's base offset.
func (f *repairFixture) damage(node int32) int64 {
	f.t.Helper()
	segs, _ := filepath.Glob(filepath.Join(f.c.cfgs[node-1].DataDir, f.topic+"-0", "*.log"))
	sort.Strings(segs)
	if len(segs) < 3 {
		f.t.Fatalf("segments %v", segs)
	}
	file, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var head [record.HeaderSize + 10]byte
	if _, err := file.ReadAt(head[:], 0); err != nil {
		f.t.Fatal(err)
	}
	h, _ := record.ParseHeader(head[:])
	if _, err := file.WriteAt([]byte{head[record.HeaderSize+5] ^ 0x10}, record.HeaderSize+5); err != nil {
		f.t.Fatal(err)
	}
	return h.BaseOffset
}

// healed waits until every replica is in the ISR, none is recovering, and all hold the
// same bytes below the leader's high watermark; then it reads back every acked record.
func (f *repairFixture) healed() {
	f.t.Helper()
	f.waitFor("every replica is back in the ISR", func() bool {
		for i := range f.c.brokers {
			p := f.c.brokers[i].meta.State().Topics[f.topic].Partitions[0]
			if len(p.ISR) != 3 || len(p.Recovering) != 0 {
				return false
			}
		}
		return true
	})
	leader := f.leader(0)
	hw := f.replica(leader).HighWatermark()
	want := replicaBytes(f.t, f.c.brokers[leader-1], f.topic, 0, hw)
	for node := int32(1); node <= 3; node++ {
		f.waitFor(fmt.Sprintf("node %d has copied up to %d", node, hw), func() bool { return f.replica(node).Log().LogEndOffset() >= hw })
		if _, damaged := f.replica(node).Log().Damaged(); damaged {
			f.t.Fatalf("node %d still damaged", node)
		}
		if got := replicaBytes(f.t, f.c.brokers[node-1], f.topic, 0, hw); !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			gb, _ := record.Split(got)
			wb, _ := record.Split(want)
			f.t.Logf("len %d vs %d, first difference at %d, batches %d vs %d", len(got), len(want), i, len(gb), len(wb))
			for k := 0; k < len(gb) && k < len(wb); k++ {
				if !bytes.Equal(gb[k], wb[k]) {
					g, _ := record.ParseHeader(gb[k])
					w, _ := record.ParseHeader(wb[k])
					f.t.Logf("batch %d: got %+v want %+v", k, g, w)
					break
				}
			}
			f.t.Fatalf("node %d differs from its leader %d below the high watermark %d", node, leader, hw)
		}
	}
	cons := f.c.client(kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < len(f.acked) && f.ctx.Err() == nil {
		cons.PollFetches(f.ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	for v := range f.acked {
		if !seen[v] {
			f.t.Fatalf("acknowledged record %q lost (%d of %d read)", v, len(seen), len(f.acked))
		}
	}
}

func (f *repairFixture) repairs(node int32) float64 {
	return testutil.ToFloat64(f.c.brokers[node-1].repair.repairs.WithLabelValues(f.topic, "0"))
}

// TestDamagedFollowerIsRepaired: a byte flips in a closed segment of a follower; its
// scrubber finds it, the follower leaves the ISR, truncates to its last good batch, copies
// the rest from the leader and rejoins; every replica then holds the same bytes.
func TestDamagedFollowerIsRepaired(t *testing.T) {
	f := newRepairFixture(t, "dmg-follower")
	leader := f.leader(0)
	follower := leader%3 + 1
	f.waitFor("the follower caught up", func() bool {
		return f.replica(follower).Log().LogEndOffset() >= f.replica(leader).HighWatermark()
	})
	at := f.damage(follower)
	f.waitFor("the follower repaired itself", func() bool { return f.repairs(follower) >= 1 })
	if f.repairs(leader) != 0 {
		t.Fatalf("the intact leader counted a repair")
	}
	f.produce(150, 20)
	f.healed()
	if l := f.leader(0); l != leader {
		t.Fatalf("leadership moved from %d to %d for a follower's damage", leader, l)
	}
	t.Logf("node %d damaged at offset %d, repaired and back in the ISR", follower, at)
}

// TestDamagedLeaderHandsOver: the damage is on the leader: its scrubber finds it, another
// ISR member takes over, the old leader repairs from it and rejoins; nothing acked is lost.
func TestDamagedLeaderHandsOver(t *testing.T) {
	f := newRepairFixture(t, "dmg-leader")
	old := f.leader(0)
	at := f.damage(old)
	f.waitFor("leadership moved off the damaged leader", func() bool {
		l := f.leader(int(old % 3))
		return l > 0 && l != old
	})
	f.produce(150, 50)
	f.waitFor("the old leader repaired itself", func() bool { return f.repairs(old) >= 1 })
	f.healed()
	t.Logf("leader %d damaged at offset %d handed over to %d and repaired", old, at, f.leader(0))
}

// TestWriteErrorTakesPartitionOffline: the leader's disk fails on write; its partition
// goes offline there (metric, KAFKA_STORAGE_ERROR), leadership moves and producing
// continues through the new leader without losing an acknowledged record.
func TestWriteErrorTakesPartitionOffline(t *testing.T) {
	f := newRepairFixture(t, "eio")
	old := f.leader(0)
	restore := f.failWrites(old, syscall.EIO)
	defer restore()
	f.produce(150, 50)
	next := f.leader(int(old % 3))
	if next == old || next < 0 {
		t.Fatalf("leader %d after its disk failed", next)
	}
	b := f.c.brokers[old-1]
	if v := testutil.ToFloat64(b.repair.offline.WithLabelValues(f.topic, "0")); v != 1 {
		t.Fatalf("strand_log_offline = %v on the failed node", v)
	}
	if v := testutil.ToFloat64(b.repair.storageErrors.WithLabelValues(f.topic, "0")); v < 1 {
		t.Fatalf("strand_storage_errors_total = %v on the failed node", v)
	}
	if isr := b.meta.State().Topics[f.topic].Partitions[0].ISR; slices.Contains(isr, old) {
		t.Fatalf("the failed node is still in the ISR %v", isr)
	}
	cons := f.c.client(kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < len(f.acked) && f.ctx.Err() == nil {
		cons.PollFetches(f.ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != len(f.acked) {
		t.Fatalf("read %d of %d acknowledged records", len(seen), len(f.acked))
	}
}

// TestRestartWithTruncatedSegment: a node's newest segment is cut short while it is
// stopped (as an OS crash can leave it). On restart its log ends below its recovery point:
// it reports the replica, is never elected while it recovers, copies the lost records back
// from the leader and rejoins the ISR; no acknowledged record is lost.
func TestRestartWithTruncatedSegment(t *testing.T) {
	f := newRepairFixture(t, "torn")
	node := f.leader(0)
	f.c.stops[node-1]()
	f.c.stops[node-1] = nil
	segs, _ := filepath.Glob(filepath.Join(f.c.cfgs[node-1].DataDir, f.topic+"-0", "*.log"))
	sort.Strings(segs)
	newest := segs[len(segs)-1]
	fi, err := os.Stat(newest)
	if err != nil || fi.Size() < 100 {
		t.Fatalf("newest segment %s: %v %v", newest, fi, err)
	}
	if err := os.Truncate(newest, fi.Size()-90); err != nil {
		t.Fatal(err)
	}
	f.produce(150, 10) // the others go on meanwhile
	if err := f.c.start(int(node - 1)); err != nil {
		t.Fatal(err)
	}
	other := int(node % 3)
	f.waitFor("the restarted node repaired its replica and rejoined the ISR", func() bool {
		p := f.c.brokers[other].meta.State().Topics[f.topic].Partitions[0]
		if p.Leader == node && !slices.Contains(p.ISR, node) {
			t.Fatalf("node %d leads while it recovers: %+v", node, p)
		}
		return f.repairs(node) >= 1 && slices.Contains(p.ISR, node)
	})
	f.healed()
}

// TestDiskFullLeaderHandsOver: the leader's appends keep failing with ENOSPC; after
// diskFullGrace it hands leadership over without failing its log, and once space is back
// it copies from the new leader and rejoins the ISR.
func TestDiskFullLeaderHandsOver(t *testing.T) {
	f := newRepairFixture(t, "full")
	old := diskFullGrace
	diskFullGrace = 300 * time.Millisecond
	t.Cleanup(func() { diskFullGrace = old })
	leader := f.leader(0)
	restore := f.failWrites(leader, syscall.ENOSPC)
	f.produce(150, 20)
	if l := f.leader(int(leader % 3)); l == leader || l < 0 {
		t.Fatalf("leader %d after node %d's disk filled", l, leader)
	}
	b := f.c.brokers[leader-1]
	if v := testutil.ToFloat64(b.repair.offline.WithLabelValues(f.topic, "0")); v != 0 {
		t.Fatalf("a full disk took the partition offline")
	}
	if err := f.replica(leader).Log().Failure(); err != nil {
		t.Fatalf("a full disk failed the log: %v", err)
	}
	restore()
	f.healed()
}

// TestStaleFetchOfDamagedFollowerIsFenced: a fetch the follower sent before it found its
// damage, still long-polling at the leader when the ISR shrinks, carries the log end of
// the log before the repair cuts it. Counted then, it would add the follower back to the
// ISR as caught up while its log is about to end below the high watermark, and a later
// election could pick the short copy (CI saw 377 acknowledged records lost that way). The
// report starts a new leader epoch, which fences that fetch. Here the follower's repair
// cannot truncate (its disk fails renames and truncations), so it goes offline and nothing
// but the stale fetch could bring it back into the ISR.
func TestStaleFetchOfDamagedFollowerIsFenced(t *testing.T) {
	f := newRepairFixture(t, "dmg-stale-fetch")
	leader := f.leader(0)
	follower := leader%3 + 1
	f.waitFor("the follower caught up", func() bool {
		return f.replica(follower).Log().LogEndOffset() >= f.replica(leader).Log().LogEndOffset()
	})
	f.disks[follower-1].Inject(vfs.Rule{Ops: vfs.OpRename | vfs.OpTruncate,
		Path: filepath.Join(f.c.cfgs[follower-1].DataDir, f.topic+"-0") + string(filepath.Separator), Err: syscall.EIO})

	// The follower's fetch, as its replica fetcher sends it: its epoch and log end.
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = follower, 10_000, 1, 1<<20
	req.SessionID, req.SessionEpoch = 0, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = f.topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch = 0, f.replica(follower).LeaderEpoch()
	rp.FetchOffset, rp.PartitionMaxBytes = f.replica(follower).Log().LogEndOffset(), 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	raw := f.c.client()
	answered := make(chan *kmsg.FetchResponse, 1)
	go func() {
		resp, err := raw.Broker(int(leader)).Request(f.ctx, req)
		if err != nil {
			t.Errorf("stale fetch: %v", err)
			answered <- nil
			return
		}
		answered <- resp.(*kmsg.FetchResponse)
	}()

	f.damage(follower)
	f.waitFor("the follower left the ISR", func() bool {
		return !slices.Contains(f.c.brokers[leader-1].meta.State().Topics[f.topic].Partitions[0].ISR, follower)
	})
	var resp *kmsg.FetchResponse
	select {
	case resp = <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("the stale fetch was never answered")
	}
	if resp != nil {
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.FencedLeaderEpoch.Code {
			t.Errorf("stale fetch answered with error code %d, want FENCED_LEADER_EPOCH", code)
		}
	}
	f.waitFor("the follower is offline on its node", func() bool { return f.c.brokers[follower-1].isOffline(topicPartition{f.topic, 0}) })
	// Any ISR change the stale fetch caused is asked for at once; give it time to land.
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p := f.c.brokers[leader-1].meta.State().Topics[f.topic].Partitions[0]
		if slices.Contains(p.ISR, follower) || !slices.Contains(p.Recovering, follower) {
			t.Fatalf("the damaged follower %d is back in the ISR %v (recovering %v) though it never copied again", follower, p.ISR, p.Recovering)
		}
	}
}
