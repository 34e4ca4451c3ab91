package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/record"
)

// testCluster is n brokers in this process, every one a metadata voter.
type testCluster struct {
	t       *testing.T
	cfgs    []Config
	brokers []*Broker
	stops   []func()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startCluster(t *testing.T, n int) *testCluster { return startClusterWith(t, n, nil) }

// startClusterWith starts n nodes after edit has adjusted each node's config. A port that
// freePort picked can be taken by another process before the node binds it; then the
// started nodes are stopped and the cluster starts again on fresh ports and directories.
func startClusterWith(t *testing.T, n int, edit func(i int, cfg *Config)) *testCluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c := newTestCluster(t, n, edit)
		err := c.tryStartAll()
		if err == nil {
			return c
		}
		for _, stop := range c.stops {
			if stop != nil {
				stop()
			}
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("starting the cluster again on other ports: %v", err)
	}
}

// newTestCluster makes the configs of n nodes on fresh loopback ports.
func newTestCluster(t *testing.T, n int, edit func(i int, cfg *Config)) *testCluster {
	c := &testCluster{t: t}
	var voters []cluster.Voter
	for i := 1; i <= n; i++ {
		voters = append(voters, cluster.Voter{ID: int32(i), Addr: freePort(t)})
	}
	for i := 1; i <= n; i++ {
		cfg := DefaultConfig()
		cfg.NodeID, cfg.DataDir = int32(i), t.TempDir()
		cfg.KafkaAddr, cfg.HTTPAddr = freePort(t), freePort(t)
		cfg.ControllerAddr, cfg.Voters = voters[i-1].Addr, voters
		cfg.StaticConfigs = map[string]string{"broker.heartbeat.interval.ms": "200", "broker.session.timeout.ms": "1500",
			"replica.lag.time.max.ms": "2000"}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() && os.Getenv("STRAND_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", i)
		}
		noDelay := time.Duration(0)
		cfg.GroupInitialRebalanceDelay = &noDelay
		if edit != nil {
			edit(i-1, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.brokers = append(c.brokers, nil)
		c.stops = append(c.stops, nil)
	}
	return c
}

// startAll starts every node at once: voters wait for each other.
func (c *testCluster) startAll() {
	c.t.Helper()
	if err := c.tryStartAll(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) tryStartAll() error {
	errs := make(chan error, len(c.cfgs))
	for i := range c.cfgs {
		go func() { errs <- c.start(i) }()
	}
	var first error
	for range c.cfgs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *testCluster) start(i int) error {
	b, err := New(c.cfgs[i])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("node %d exited before ready: %v", i+1, err)
	case <-time.After(60 * time.Second):
		cancel()
		return fmt.Errorf("node %d not ready after 60s", i+1)
	}
	stopped := false
	c.brokers[i] = b
	c.stops[i] = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	c.t.Cleanup(c.stops[i])
	return nil
}

func (c *testCluster) seeds() []string {
	var out []string
	for i, b := range c.brokers {
		if b != nil && c.stops[i] != nil {
			out = append(out, b.KafkaAddr().String())
		}
	}
	return out
}

func (c *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// replicaBytes is a replica's log up to end, as stored.
func replicaBytes(t *testing.T, b *Broker, topic string, p int32, end int64) []byte {
	t.Helper()
	part, ok := b.partition(topic, p)
	if !ok {
		t.Fatalf("node %d holds no replica of %s-%d", b.cfg.NodeID, topic, p)
	}
	var out []byte
	for off := part.Log().LogStartOffset(); off < end; {
		chunk, err := part.Log().ReadBytes(off, 1<<20, end, true)
		if err != nil || len(chunk) == 0 {
			t.Fatalf("node %d reading %s-%d at %d: %v", b.cfg.NodeID, topic, p, off, err)
		}
		batches, err := record.Split(chunk)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := record.ParseHeader(batches[len(batches)-1])
		out, off = append(out, chunk...), h.NextOffset()
	}
	return out
}

// TestReplicationAndFailover: three nodes replicate a topic with RF 3 and acks=all; every
// replica holds the same bytes; the leader of a partition stops, another ISR member leads,
// no acknowledged record is lost, and the old leader catches up when it returns.
func TestReplicationAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.client())
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "rep"); err != nil {
		t.Fatal(err)
	}
	prod := c.client(kgo.DefaultProduceTopic("rep"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(50))
	acked := map[string]bool{}
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			v := fmt.Sprint(i)
			r, err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).First()
			if err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
			acked[string(r.Value)] = true
		}
	}
	produce(0, 300)

	// Every replica has the same bytes below the leader's high watermark.
	meta, err := adm.Metadata(ctx, "rep")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range meta.Topics["rep"].Partitions {
		leader := c.brokers[p.Leader-1]
		lp, _ := leader.partition("rep", p.Partition)
		hw := lp.HighWatermark()
		want := replicaBytes(t, leader, "rep", p.Partition, hw)
		deadline := time.Now().Add(10 * time.Second)
		for _, r := range p.Replicas {
			for {
				rp, _ := c.brokers[r-1].partition("rep", p.Partition)
				if rp.Log().LogEndOffset() >= hw {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica on node %d of rep-%d stuck at %d, leader high watermark %d", r, p.Partition, rp.Log().LogEndOffset(), hw)
				}
				time.Sleep(20 * time.Millisecond)
			}
			got := replicaBytes(t, c.brokers[r-1], "rep", p.Partition, hw)
			if !bytes.Equal(got, want) {
				t.Fatalf("replica on node %d of rep-%d differs from its leader's below the high watermark", r, p.Partition)
			}
		}
	}

	// Stop the leader of partition 0; another in-sync replica takes over.
	old := meta.Topics["rep"].Partitions[0].Leader
	c.stops[old-1]()
	c.stops[old-1] = nil
	deadline := time.Now().Add(30 * time.Second)
	var newLeader int32 = -1
	for time.Now().Before(deadline) {
		s := c.brokers[old%3].meta.State()
		if l := s.Topics["rep"].Partitions[0].Leader; l >= 0 && l != old {
			newLeader = l
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if newLeader < 0 {
		t.Fatalf("partition 0 has no new leader 30s after node %d stopped", old)
	}
	prod2 := c.client(kgo.DefaultProduceTopic("rep"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(50))
	prod = prod2
	produce(300, 300)

	// Bring it back: it follows, truncates if needed and catches up.
	if err := c.start(int(old - 1)); err != nil {
		t.Fatal(err)
	}
	cons := c.client(kgo.ConsumeTopics("rep"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < len(acked) && ctx.Err() == nil {
		f := cons.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	var lost []string
	for v := range acked {
		if !seen[v] {
			lost = append(lost, v)
		}
	}
	slices.Sort(lost)
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged records lost: %s", len(lost), strings.Join(lost[:min(10, len(lost))], ","))
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		s := c.brokers[old-1].meta.State()
		if isr := s.Topics["rep"].Partitions[0].ISR; slices.Contains(isr, old) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not rejoin the ISR of rep-0 within 30s", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("node %d led rep-0, stopped; node %d took over; %d acknowledged records all read back; node %d back in the ISR", old, newLeader, len(acked), old)
}
