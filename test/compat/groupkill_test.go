package compat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

const (
	groupChildEnv     = "STRAND_GROUP_CHILD_BROKER"
	groupChildNextGen = "STRAND_GROUP_CHILD_NEXT_GEN"
)

// memberOpts are the group options of every member of the kill tests. With nextGen the
// members use KIP-848's ConsumerGroupHeartbeat (the broker assigns); the session timeout
// then is the broker's group.consumer.session.timeout.ms.
func memberOpts(nextGen bool) []kgo.Opt {
	opts := []kgo.Opt{kgo.ConsumerGroup("survivors"), kgo.ConsumeTopics("killed"),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond), kgo.DisableAutoCommit()}
	if nextGen {
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer()))
	}
	return opts
}

// TestGroupChild is the kill tests' child: one franz-go group member that consumes and
// commits until it is killed.
func TestGroupChild(t *testing.T) {
	broker := os.Getenv(groupChildEnv)
	if broker == "" {
		t.Skip("only runs as TestGroupMemberKilled's child")
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(broker)}, memberOpts(os.Getenv(groupChildNextGen) != "")...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	for {
		f := cl.PollFetches(context.Background())
		if f.NumRecords() > 0 {
			cl.CommitUncommittedOffsets(context.Background())
		}
		fmt.Println("polled", f.NumRecords())
	}
}

// TestGroupMemberKilled: three members share 12 partitions; one is killed with SIGKILL
// (no LeaveGroup); its partitions move to the others once its session times out; every
// record is consumed. Three kills in a row give the rebalance time's median.
func TestGroupMemberKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; takes about 30 s")
	}
	memberKilled(t, false)
}

// TestConsumerGroupProtocolMemberKilled is TestGroupMemberKilled with KIP-848 members: the
// broker assigns, and the survivors keep every partition they had while they take the
// killed member's.
func TestConsumerGroupProtocolMemberKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; takes about 30 s")
	}
	memberKilled(t, true)
}

func memberKilled(t *testing.T, nextGen bool) {
	node := harness.Start(t, harness.Options{Args: []string{
		"--broker-config", "group.consumer.session.timeout.ms=6000",
		"--broker-config", "group.consumer.heartbeat.interval.ms=500"}})
	ctx := harness.Context(t, 3*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopic(ctx, 12, 1, nil, "killed"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	owned := map[*kgo.Client]map[int32]bool{}
	revokedAtKill := 0 // partitions taken from survivors while the group absorbs a kill
	absorbing := false
	member := func() *kgo.Client {
		var cl *kgo.Client
		track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if owned[cl] == nil {
					owned[cl] = map[int32]bool{}
				}
				for _, p := range ps["killed"] {
					owned[cl][p] = add
					if !add && absorbing {
						revokedAtKill++
					}
				}
			}
		}
		opts := append(memberOpts(nextGen), kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)),
			kgo.OnPartitionsLost(track(false)))
		cl = node.Client(t, opts...)
		return cl
	}
	survivors := []*kgo.Client{member(), member()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, cl := range survivors {
		pollUntilStopped(ctx, &wg, stop, cl, 200*time.Millisecond, func(f kgo.Fetches) {
			f.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				seen[string(r.Value)]++
				mu.Unlock()
			})
			cl.CommitUncommittedOffsets(ctx)
		})
	}
	defer func() { close(stop); wg.Wait() }()
	prod := node.Client(t, kgo.DefaultProduceTopic("killed"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produced := 0
	partitionOf := map[string]int32{}
	survivorsOnly := map[string]bool{} // produced while no third member lived: only survivors can read them
	produce := func(n int) {
		for i := 0; i < n; i++ {
			if produced%600 >= 300 {
				survivorsOnly[fmt.Sprint(produced)] = true
			}
			prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(produced))}, func(r *kgo.Record, err error) {
				mu.Lock()
				partitionOf[string(r.Value)] = r.Partition
				mu.Unlock()
			})
			produced++
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// waitMembers waits until the group is stable with n members owning all 12 partitions.
	waitMembers := func(n int, limit time.Duration) time.Duration {
		start := time.Now()
		for time.Since(start) < limit {
			d, err := adm.DescribeGroups(ctx, "survivors")
			if err == nil && d["survivors"].State == "Stable" && len(d["survivors"].Members) == n {
				owned := 0
				for _, m := range d["survivors"].Members {
					if a, ok := m.Assigned.AsConsumer(); ok {
						for _, tp := range a.Topics {
							owned += len(tp.Partitions)
						}
					}
				}
				if owned == 12 {
					return time.Since(start)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		d, _ := adm.DescribeGroups(ctx, "survivors")
		t.Fatalf("group did not settle with %d members in %v: %+v", n, limit, d["survivors"])
		return 0
	}
	// survivorPartitions maps each partition a survivor owns to that survivor.
	survivorPartitions := func() map[int32]*kgo.Client {
		mu.Lock()
		defer mu.Unlock()
		out := map[int32]*kgo.Client{}
		for _, cl := range survivors {
			for p, ok := range owned[cl] {
				if ok {
					out[p] = cl
				}
			}
		}
		return out
	}
	var rebalances []time.Duration
	for round := 0; round < 3; round++ {
		child := exec.Command(os.Args[0], "-test.run=^TestGroupChild$", "-test.count=1")
		child.Env = append(os.Environ(), groupChildEnv+"="+node.KafkaAddr)
		if nextGen {
			child.Env = append(child.Env, groupChildNextGen+"=1")
		}
		out, _ := child.StdoutPipe()
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
			}
		}()
		waitMembers(3, 30*time.Second)
		produce(300)
		before := survivorPartitions()
		mu.Lock()
		absorbing = true
		mu.Unlock()
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		took := waitMembers(2, 30*time.Second)
		rebalances = append(rebalances, took)
		waitFor(t, 10*time.Second, func() bool { return len(survivorPartitions()) == 12 })
		mu.Lock()
		absorbing = false
		mu.Unlock()
		after := survivorPartitions()
		for p, cl := range before {
			if after[p] != cl {
				t.Errorf("round %d: partition %d moved between survivors when a third member died", round, p)
			}
		}
		// Only the survivors can read what is produced now; they must before the next
		// member joins and could take the partitions.
		from := produced
		produce(300)
		waitFor(t, 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for i := from; i < produced; i++ {
				if seen[fmt.Sprint(i)] == 0 {
					return false
				}
			}
			return true
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == produced {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// The killed member may have consumed and committed some records itself; what it
	// consumed without committing is read again by the survivors. Everything produced must
	// have been read by the survivors or committed by the child.
	missing := []string{}
	lostAfterKill := 0
	for i := 0; i < produced; i++ {
		if seen[fmt.Sprint(i)] == 0 {
			missing = append(missing, fmt.Sprint(i))
			if survivorsOnly[fmt.Sprint(i)] {
				lostAfterKill++
			}
		}
	}
	if lostAfterKill > 0 {
		byPartition := map[int32]int{}
		for _, v := range missing {
			byPartition[partitionOf[v]]++
		}
		t.Errorf("survivors never read %d of the %d records produced after a kill; unread records by partition: %v", lostAfterKill, len(survivorsOnly), byPartition)
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	sort.Slice(rebalances, func(i, j int) bool { return rebalances[i] < rebalances[j] })
	protocol := "classic"
	if nextGen {
		protocol = "KIP-848"
	}
	t.Logf("%s: rebalance after SIGKILL of 1 of 3 members (session timeout 6s): median %v, all %v; survivors read %d of %d records, %d duplicates; %d partitions revoked from survivors while they absorbed a kill",
		protocol, rebalances[1].Round(10*time.Millisecond), rebalances, len(seen), produced, dups, revokedAtKill)
	if revokedAtKill > 0 {
		t.Errorf("survivors gave up %d partitions while taking the killed member's: the rebalance was not cooperative", revokedAtKill)
	}
	if len(missing) > 0 {
		committedByChild := 0
		offs, _ := adm.FetchOffsets(ctx, "survivors")
		offs.Each(func(o kadm.OffsetResponse) { committedByChild += int(o.At) })
		if committedByChild < produced {
			t.Fatalf("%d records never consumed (committed offsets add up to %d of %d): %s", len(missing), committedByChild, produced, strings.Join(missing[:min(10, len(missing))], ","))
		}
	}
	for _, d := range rebalances {
		if d > 20*time.Second {
			t.Fatalf("a rebalance took %v, beyond the 6 s session timeout plus the rebalance", d)
		}
	}
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
