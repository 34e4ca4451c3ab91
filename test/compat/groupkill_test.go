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

const groupChildEnv = "STRAND_GROUP_CHILD_BROKER"

// TestGroupChild is TestGroupMemberKilled's child: one franz-go group member that consumes
// and commits until it is killed.
func TestGroupChild(t *testing.T) {
	broker := os.Getenv(groupChildEnv)
	if broker == "" {
		t.Skip("only runs as TestGroupMemberKilled's child")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumerGroup("survivors"), kgo.ConsumeTopics("killed"),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond), kgo.DisableAutoCommit())
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
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 3*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopic(ctx, 12, 1, nil, "killed"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	member := func() *kgo.Client {
		return node.Client(t, kgo.ConsumerGroup("survivors"), kgo.ConsumeTopics("killed"),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond), kgo.DisableAutoCommit())
	}
	survivors := []*kgo.Client{member(), member()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, cl := range survivors {
		wg.Add(1)
		go func(cl *kgo.Client) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				f := cl.PollFetches(pctx)
				cancel()
				f.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)]++
					mu.Unlock()
				})
				cl.CommitUncommittedOffsets(ctx)
			}
		}(cl)
	}
	defer func() { close(stop); wg.Wait() }()
	prod := node.Client(t, kgo.DefaultProduceTopic("killed"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produced := 0
	produce := func(n int) {
		for i := 0; i < n; i++ {
			prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(produced))}, nil)
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
	var rebalances []time.Duration
	for round := 0; round < 3; round++ {
		child := exec.Command(os.Args[0], "-test.run=^TestGroupChild$", "-test.count=1")
		child.Env = append(os.Environ(), groupChildEnv+"="+node.KafkaAddr)
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
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		took := waitMembers(2, 30*time.Second)
		rebalances = append(rebalances, took)
		produce(300)
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
	for i := 0; i < produced; i++ {
		if seen[fmt.Sprint(i)] == 0 {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	sort.Slice(rebalances, func(i, j int) bool { return rebalances[i] < rebalances[j] })
	t.Logf("rebalance after SIGKILL of 1 of 3 members (session timeout 6s): median %v, all %v; survivors read %d of %d records, %d duplicates",
		rebalances[1].Round(10*time.Millisecond), rebalances, len(seen), produced, dups)
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
