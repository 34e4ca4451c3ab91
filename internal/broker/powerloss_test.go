package broker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/vfs"
)

// ackedRecord is a record the cluster acknowledged with acks=all.
type ackedRecord struct {
	partition int32
	offset    int64
	at        time.Time
}

// TestPowerLossOfEveryNode (issue 8, scenario 3 on the in-memory crash file system): three
// nodes, each with its journal and metadata store on its own vfs.Mem, take acks=all writes;
// at a random moment every node loses power (CrashCloneRandom: what was synced survives, and
// of what was not, a random prefix of each file, as page-cache writeback leaves it), and the
// cluster restarts on what the disks kept. After every cycle, each record acknowledged before
// the power went is read back at its offset, and at the end every replica holds the same
// bytes below the high watermark. Unlike kill -9, this loses the page cache.
func TestPowerLossOfEveryNode(t *testing.T) {
	cycles := 30
	if testing.Short() {
		cycles = 3
	}
	if v, err := strconv.Atoi(os.Getenv("STRAND_POWERLOSS_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d, %d cycles", seed, cycles)

	mems := []*vfs.Mem{vfs.NewMem(), vfs.NewMem(), vfs.NewMem()}
	c := startClusterWith(t, 3, func(i int, cfg *Config) { cfg.FS = mems[i] })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.client())
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2"),
		"segment.bytes": kadm.StringPtr("65536")}, "power"); err != nil {
		t.Fatal(err)
	}

	acked := map[string]ackedRecord{}
	var inDoubt, totalAcked, lostTotal int
	for cycle := range cycles {
		// Load, then the power goes at a random moment while writes are in flight.
		var mu sync.Mutex
		var cycleAcks []struct {
			value string
			rec   ackedRecord
		}
		prod := c.client(kgo.DefaultProduceTopic("power"), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(time.Millisecond), kgo.RecordRetries(1000), kgo.MaxBufferedRecords(2000))
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A bounded load per cycle: what matters is that writes are in flight when the
			// power goes, and reading everything back after every cycle stays cheap.
			for i := 0; i < 3000 && loadCtx.Err() == nil; i++ {
				v := fmt.Sprintf("c%d-%d", cycle, i)
				prod.Produce(loadCtx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err != nil {
						return
					}
					at := time.Now()
					mu.Lock()
					cycleAcks = append(cycleAcks, struct {
						value string
						rec   ackedRecord
					}{string(r.Value), ackedRecord{r.Partition, r.Offset, at}})
					mu.Unlock()
				})
			}
		}()
		waitFor(t, "the first acknowledgement of the cycle", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(cycleAcks) > 0
		})
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)

		powerOff := time.Now()
		for i, m := range mems {
			mems[i] = m.CrashCloneRandom(rng)
		}
		stopLoad()
		prod.Close()
		wg.Wait()
		var stops sync.WaitGroup
		for i := range c.stops {
			stops.Add(1)
			go func() { defer stops.Done(); c.stops[i]() }()
		}
		stops.Wait()

		mu.Lock()
		for _, a := range cycleAcks {
			if a.rec.at.Before(powerOff) {
				acked[a.value] = a.rec
			} else {
				inDoubt++ // acknowledged while the power was going: a real client never sees it
			}
		}
		totalAcked += len(cycleAcks)
		mu.Unlock()

		for i := range c.cfgs {
			c.cfgs[i].FS = mems[i]
		}
		c.startAll()
		lost := readBackAcked(t, ctx, c, acked)
		lostTotal += lost
		t.Logf("cycle %d: %d acknowledged before the power went (%d in all), lost %d", cycle+1, len(acked), totalAcked-inDoubt, lost)
		if lost > 0 {
			t.Fatalf("cycle %d lost %d acknowledged records", cycle+1, lost)
		}
	}
	divergent := compareReplicas(t, ctx, c, "power", 3)
	line := fmt.Sprintf("power loss of every node (in-process, vfs.Mem): cycles %d, acknowledged %d, lost %d, divergent partitions %d", cycles, len(acked), lostTotal, divergent)
	t.Log(line)
	if name := os.Getenv("STRAND_FIGURES"); name != "" {
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "\n%s\n", line)
			f.Close()
		}
	}
	if divergent > 0 {
		t.Fatalf("%d partitions have replicas that disagree below the high watermark", divergent)
	}
}

// readBackAcked reads the topic from the start with a real client and counts acknowledged
// records that are not at their offset.
func readBackAcked(t *testing.T, ctx context.Context, c *testCluster, acked map[string]ackedRecord) int {
	t.Helper()
	adm := kadm.NewClient(c.client())
	want := map[int32]int64{}
	for _, a := range acked {
		want[a.partition] = max(want[a.partition], a.offset+1)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ends, err := adm.ListEndOffsets(ctx, "power")
		ok := err == nil
		if ok {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil || o.Offset < want[o.Partition] {
					ok = false
				}
			})
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("high watermarks below what was acknowledged a minute after restart: %v %v", ends, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cons := c.client(kgo.ConsumeTopics("power"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	found := map[string]ackedRecord{}
	reached := map[int32]bool{}
	for len(reached) < len(want) && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		f := cons.PollFetches(pctx)
		cancel()
		f.EachRecord(func(r *kgo.Record) {
			found[string(r.Value)] = ackedRecord{partition: r.Partition, offset: r.Offset}
			if r.Offset+1 >= want[r.Partition] {
				reached[r.Partition] = true
			}
		})
	}
	cons.Close()
	lost := 0
	for v, a := range acked {
		if got, ok := found[v]; !ok || got.partition != a.partition || got.offset != a.offset {
			if lost < 5 {
				t.Logf("acknowledged %s at %d/%d, read %+v (present %v)", v, a.partition, a.offset, got, ok)
			}
			lost++
		}
	}
	return lost
}

// compareReplicas waits (bounded) for every replica of the topic's partitions to reach the
// leader's high watermark and counts partitions whose replicas differ below it.
func compareReplicas(t *testing.T, ctx context.Context, c *testCluster, topic string, partitions int32) int {
	t.Helper()
	divergent := 0
	for p := range partitions {
		var leader *Broker
		waitFor(t, "a leader of "+topic, func() bool {
			s := c.brokers[0].meta.State()
			l := s.Topics[topic].Partitions[p].Leader
			if l < 1 {
				return false
			}
			leader = c.brokers[l-1]
			lp, ok := leader.partition(topic, p)
			return ok && lp.IsLeader()
		})
		lp, _ := leader.partition(topic, p)
		hw := lp.HighWatermark()
		want := replicaBytes(t, leader, topic, p, hw)
		for _, b := range c.brokers {
			waitFor(t, "a replica to reach the high watermark", func() bool {
				rp, ok := b.partition(topic, p)
				return ok && rp.Log().LogEndOffset() >= hw
			})
			if got := replicaBytes(t, b, topic, p, hw); !bytes.Equal(got, want) {
				t.Logf("%s-%d: node %d differs from leader %d below the high watermark %d", topic, p, b.cfg.NodeID, leader.cfg.NodeID, hw)
				divergent++
				break
			}
		}
	}
	return divergent
}
