package compat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// The ETL chain: etl-in → stage 1 → etl-s1 → stage 2 → etl-s2 → stage 3 → etl-out. Each
// stage is a consumer group whose members consume one topic and produce to the next.
var etlTopics = []string{"etl-in", "etl-s1", "etl-s2", "etl-out"}

const (
	etlRecords    = 300_000
	etlPartitions = 6
	etlMemberEnv  = "STRAND_ETL_MEMBER" // broker,stage: run TestETLChainMember as a stage member
)

// etlBalancer gives each stage a different assignor, so the chain covers both protocols:
// with the eager ones (range, sticky) every member revokes everything and commits in its
// revoke callback while the group is PreparingRebalance; with cooperative-sticky it
// revokes only what moves.
func etlBalancer(stage int) kgo.GroupBalancer {
	switch stage {
	case 1:
		return kgo.RangeBalancer()
	case 2:
		return kgo.StickyBalancer()
	}
	return kgo.CooperativeStickyBalancer()
}

// TestETLChainMember is one member of one stage, run by TestETLChain as a child process
// (so that it can be killed with SIGKILL). It is the consume → transform → produce loop
// of an at-least-once ETL job written the way franz-go recommends:
//
//   - BlockRebalanceOnPoll: a rebalance (and so the revoke callback) runs only between
//     two iterations of the loop, never while polled records are being processed;
//   - each iteration produces the output of every polled record, flushes it (acks=all),
//     and only then commits the input offsets (CommitUncommittedOffsets, auto-commit
//     off), so a committed input offset always has its output written;
//   - OnPartitionsRevoked commits synchronously too (franz-go's advice when auto-commit is
//     off: "it is highly recommended to do a proper blocking commit in
//     OnPartitionsRevoked", pkg/kgo/config.go). The commit in the loop can fail when a
//     rebalance has begun; this one must not.
//
// It reads commands from stdin: "leave" closes the client (revoke callback, commit,
// LeaveGroup) and exits; "park" stops at the next point where every record it polled is
// produced, flushed and committed, prints "parked" and waits to be killed. It reports on
// stdout what the parent counts.
func TestETLChainMember(t *testing.T) {
	env := os.Getenv(etlMemberEnv)
	if env == "" {
		t.Skip("only runs as TestETLChain's child")
	}
	var broker string
	var stage int
	if _, err := fmt.Sscanf(strings.Replace(env, ",", " ", 1), "%s %d", &broker, &stage); err != nil || stage < 1 || stage > 3 {
		t.Fatalf("%s=%q: want broker,stage", etlMemberEnv, env)
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.ConsumerGroup(fmt.Sprintf("etl-stage-%d", stage)),
		kgo.ConsumeTopics(etlTopics[stage-1]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(etlBalancer(stage)),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RebalanceTimeout(15*time.Second),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				say("revoke-commit-failed %v", err)
				return
			}
			say("revoke-commit-ok")
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			say("lost %v", lost)
		}),
		kgo.DefaultProduceTopic(etlTopics[stage]),
		kgo.ProducerLinger(time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	commands := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			commands <- sc.Text()
		}
		os.Exit(3) // the parent is gone
	}()
	ctx := context.Background()
	suffix := fmt.Sprintf("|%d", stage)
	parking := false
	for {
		select {
		case cmd := <-commands:
			switch cmd {
			case "leave":
				cl.Close() // OnPartitionsRevoked commits, then LeaveGroup
				say("left")
				os.Exit(0)
			case "park":
				parking = true
			}
		default:
		}
		pollCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fetches := cl.PollRecords(pollCtx, 10_000)
		cancel()
		var produceErr atomic.Value
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			v := make([]byte, 0, len(r.Value)+len(suffix))
			v = append(append(v, r.Value...), suffix...)
			cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.Store(err)
				}
			})
		})
		if err := cl.Flush(ctx); err != nil {
			produceErr.Store(err)
		}
		if err, _ := produceErr.Load().(error); err != nil {
			// The output of a polled record is missing; committing now would lose it.
			say("produce-failed %v", err)
			os.Exit(2)
		}
		committed := true
		if n > 0 {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				say("commit-failed %v", err)
				committed = false
			}
		}
		cl.AllowRebalance()
		if parking && committed {
			// Everything polled is produced, flushed and committed; nothing more is polled.
			say("parked")
			select {}
		}
	}
}

// etlMember is a running TestETLChainMember process.
type etlMember struct {
	stage int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines the parent did not count itself ("parked", "left")
	done  chan struct{}
}

// etlChain runs the members of the three stages and counts what they report.
type etlChain struct {
	t      *testing.T
	broker string
	mu     sync.Mutex
	counts map[string]int // revoke-commit-ok, revoke-commit-failed, commit-failed, lost, ...
	faults []string       // lines that must fail the test (produce-failed, unexpected exits)
	stderr map[*etlMember]*strings.Builder
}

func (c *etlChain) start(stage int) *etlMember {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestETLChainMember$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", etlMemberEnv, c.broker, stage))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: stderr}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m := &etlMember{stage: stage, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	c.mu.Lock()
	c.stderr[m] = stderr
	c.counts["joins"]++
	c.mu.Unlock()
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			word, _, _ := strings.Cut(line, " ")
			c.mu.Lock()
			switch word {
			case "revoke-commit-ok", "revoke-commit-failed", "commit-failed", "lost":
				c.counts[fmt.Sprintf("stage%d-%s", stage, word)]++
				c.counts[word]++
				if word != "revoke-commit-ok" && c.counts["log-"+word] < 5 {
					c.counts["log-"+word]++
					c.t.Logf("stage %d member %d: %s", stage, cmd.Process.Pid, line)
				}
			case "produce-failed":
				c.faults = append(c.faults, fmt.Sprintf("stage %d member %d: %s", stage, cmd.Process.Pid, line))
			case "parked", "left":
				m.lines <- word
			}
			c.mu.Unlock()
		}
		cmd.Wait()
	}()
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-m.done
	})
	return m
}

// leave asks a member to close its client: the revoke callback commits, then LeaveGroup.
func (c *etlChain) leave(m *etlMember) error {
	fmt.Fprintln(m.stdin, "leave")
	if err := c.expect(m, "left"); err != nil {
		return err
	}
	<-m.done
	c.mu.Lock()
	c.counts["clean leaves"]++
	c.mu.Unlock()
	return nil
}

// kill parks a member where it holds no uncommitted output, then SIGKILLs it: no
// LeaveGroup, its connections cut; the coordinator must time its session out.
func (c *etlChain) kill(m *etlMember) error {
	fmt.Fprintln(m.stdin, "park")
	if err := c.expect(m, "parked"); err != nil {
		return err
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	c.mu.Lock()
	c.counts["kills"]++
	c.mu.Unlock()
	return nil
}

func (c *etlChain) expect(m *etlMember, word string) error {
	select {
	case got := <-m.lines:
		if got != word {
			return fmt.Errorf("stage %d member %d said %q, want %q", m.stage, m.cmd.Process.Pid, got, word)
		}
		return nil
	case <-m.done:
		return fmt.Errorf("stage %d member %d exited before it said %q: %s", m.stage, m.cmd.Process.Pid, word, c.stderrOf(m))
	case <-time.After(30 * time.Second):
		return fmt.Errorf("stage %d member %d did not say %q within 30 s", m.stage, m.cmd.Process.Pid, word)
	}
}

func (c *etlChain) stderrOf(m *etlMember) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr[m].String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestETLChain: 300,000 records flow through a three-stage consume → transform → produce
// chain, each stage a consumer group of three franz-go members (child processes), while
// members of every stage join, leave cleanly and are killed with SIGKILL. Every input
// record must reach etl-out exactly once, having passed each stage once.
//
// Why exactly-once is a fair assertion for an at-least-once pipeline: a member commits an
// input offset only after the output of every record before it is flushed, so nothing is
// lost; it can duplicate output only if it produced output whose input offset it never
// committed and another member then reprocesses that input. That happens in exactly two
// ways, and the test excludes the legitimate one:
//   - the member dies between producing and committing. Without transactions (Strand has
//     none yet) that is inherent, so the test kills a member only once it has parked at a
//     point where everything it polled is produced, flushed and committed (the kill is
//     still a real SIGKILL: no LeaveGroup, connections cut, the session must time out);
//   - its commit is refused although it is still a member of the generation that owns the
//     partitions. That is the bug this test guards: Strand answered
//     REBALANCE_IN_PROGRESS to commits made while the group was PreparingRebalance, which
//     is exactly when an eager member's revoke callback commits (Kafka accepts them: its
//     GroupCoordinator.handleCommitOffsets answers REBALANCE_IN_PROGRESS to a valid
//     member only in CompletingRebalance). A clean leave (Close: revoke callback, commit,
//     LeaveGroup) must give no duplicate at all.
//
// Members that lose their partitions (OnPartitionsLost, e.g. a session that expired on a
// starved machine) would also reprocess; the test reports them, and with them the
// duplicates are not blamed on the coordinator.
func TestETLChain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 10 processes for about a minute")
	}
	started := time.Now()
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 4*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopics(ctx, etlPartitions, 1, nil, etlTopics...); err != nil {
		t.Fatal(err)
	}
	chain := &etlChain{t: t, broker: node.KafkaAddr, counts: map[string]int{}, stderr: map[*etlMember]*strings.Builder{}}
	var members [4][]*etlMember // by stage
	for stage := 1; stage <= 3; stage++ {
		for range 3 {
			members[stage] = append(members[stage], chain.start(stage))
		}
	}
	for stage := 1; stage <= 3; stage++ {
		if err := waitGroupSize(ctx, adm, stage, 3); err != nil {
			t.Fatal(err)
		}
	}

	// The source: 300,000 keyed records, produced in steps over about 30 s while the
	// members churn.
	produced := make(chan error, 1)
	go func() {
		prod, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr), kgo.DefaultProduceTopic(etlTopics[0]))
		if err != nil {
			produced <- err
			return
		}
		defer prod.Close()
		const steps = 60
		for step := range steps {
			for i := step * etlRecords / steps; i < (step+1)*etlRecords/steps; i++ {
				v := fmt.Sprintf("%06d", i)
				prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, nil)
			}
			if err := prod.Flush(ctx); err != nil {
				produced <- err
				return
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				produced <- ctx.Err()
				return
			}
		}
		produced <- nil
	}()

	// The churn, in every stage at once: a fourth member joins, the oldest leaves cleanly,
	// a member is killed, its session expires, a new member replaces it; twice.
	var churn sync.WaitGroup
	churnErrs := make([]error, 4)
	for stage := 1; stage <= 3; stage++ {
		churn.Add(1)
		go func() {
			defer churn.Done()
			churnErrs[stage] = func() error {
				for range 2 {
					members[stage] = append(members[stage], chain.start(stage))
					if err := waitGroupSize(ctx, adm, stage, 4); err != nil {
						return err
					}
					if err := chain.leave(members[stage][0]); err != nil {
						return err
					}
					members[stage] = members[stage][1:]
					if err := waitGroupSize(ctx, adm, stage, 3); err != nil {
						return err
					}
					if err := chain.kill(members[stage][0]); err != nil {
						return err
					}
					// The coordinator times the killed member out before its replacement joins.
					if err := waitGroupSize(ctx, adm, stage, 2); err != nil {
						return err
					}
					members[stage] = append(members[stage][1:], chain.start(stage))
					if err := waitGroupSize(ctx, adm, stage, 3); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	churn.Wait()
	if err := <-produced; err != nil {
		t.Fatalf("producing the input: %v", err)
	}
	for _, err := range churnErrs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Drained: every stage has committed its whole input.
	drainLimit := time.Now().Add(60 * time.Second)
	for stage := 1; stage <= 3; stage++ {
		for {
			lag := groupLag(t, ctx, adm, stage)
			if lag == 0 {
				break
			}
			if time.Now().After(drainLimit) {
				t.Fatalf("stage %d still lags %d records 60 s after the input ended (%v)", stage, lag, chain.counts)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, ms := range members {
		for _, m := range ms {
			if err := chain.leave(m); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Count: by input key, how often each topic of the chain holds it.
	seen := map[string][]int{}
	wrongValues := 0
	for i, topic := range etlTopics {
		readTopic(t, ctx, node, topic, func(r *kgo.Record) {
			k := string(r.Key)
			if seen[k] == nil {
				seen[k] = make([]int, len(etlTopics))
			}
			seen[k][i]++
			// Each stage appends its number: a record in etl-out went through all three.
			if want := k + "|1|2|3"[:2*i]; string(r.Value) != want {
				if wrongValues++; wrongValues <= 5 {
					t.Errorf("%s: key %s holds %q, want %q", topic, k, r.Value, want)
				}
			}
		})
	}
	var output, duplicates, lost int
	stageDuplicates := make([]int, len(etlTopics))
	for _, n := range seen {
		for i := range etlTopics {
			if n[i] > 1 {
				stageDuplicates[i] += n[i] - 1
			}
		}
		output += n[len(etlTopics)-1]
		if n[0] == 1 && n[len(etlTopics)-1] == 0 {
			lost++
		}
		if n[len(etlTopics)-1] > 1 {
			duplicates += n[len(etlTopics)-1] - 1
		}
	}
	input := 0
	for _, n := range seen {
		input += n[0]
	}
	chain.mu.Lock()
	counts := chain.counts
	faults := chain.faults
	chain.mu.Unlock()
	line := fmt.Sprintf("etl chain (3 stages × 3 franz-go members; %d joins, %d clean leaves, %d SIGKILLs): input %d, output %d, duplicates %d, lost %d; revoke-callback commits %d ok, %d refused; loop commits refused %d; partitions lost %d; %v",
		counts["joins"], counts["clean leaves"], counts["kills"], input, output, duplicates, lost,
		counts["revoke-commit-ok"], counts["revoke-commit-failed"], counts["commit-failed"], counts["lost"],
		time.Since(started).Round(time.Second))
	t.Log(line)
	t.Logf("duplicates by topic %v: %v", etlTopics, stageDuplicates)
	if name := os.Getenv("STRAND_FIGURES"); name != "" {
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "\n%s\n", line)
			f.Close()
		}
	}
	for _, f := range faults {
		t.Error(f)
	}
	if input != etlRecords || stageDuplicates[0] != 0 {
		t.Fatalf("the source wrote %d records (%d duplicated), want %d", input, stageDuplicates[0], etlRecords)
	}
	if lost > 0 {
		t.Errorf("%d input records never reached %s", lost, etlTopics[len(etlTopics)-1])
	}
	if duplicates > 0 {
		t.Errorf("%d duplicates in %s (by topic %v); %d revoke-callback commits were refused, %d members lost their partitions",
			duplicates, etlTopics[len(etlTopics)-1], stageDuplicates, counts["revoke-commit-failed"], counts["lost"])
	}
}

// waitGroupSize waits until a stage's group is Stable with n members.
func waitGroupSize(ctx context.Context, adm *kadm.Client, stage, n int) error {
	group := fmt.Sprintf("etl-stage-%d", stage)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := adm.DescribeGroups(ctx, group)
		if err == nil && d[group].State == "Stable" && len(d[group].Members) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stage %d: group not Stable with %d members within 30 s: state %q, %d members, %v", stage, n, d[group].State, len(d[group].Members), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// groupLag is how many records of its input a stage has not committed.
func groupLag(t *testing.T, ctx context.Context, adm *kadm.Client, stage int) int64 {
	t.Helper()
	group := fmt.Sprintf("etl-stage-%d", stage)
	ends, err := adm.ListEndOffsets(ctx, etlTopics[stage-1])
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		committed, _ := offs.Lookup(o.Topic, o.Partition)
		lag += o.Offset - max(committed.At, 0)
	})
	return lag
}

// readTopic reads every partition of a topic from the start to its end offsets.
func readTopic(t *testing.T, ctx context.Context, node *harness.Node, topic string, each func(*kgo.Record)) {
	t.Helper()
	adm := kadm.NewClient(node.Client(t))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offsets[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	cl := node.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	defer cl.Close()
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (partitions left %v)", topic, ctx.Err(), want)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Fatalf("reading %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				each(r)
				if r.Offset == end-1 {
					delete(want, r.Partition)
				}
			}
		})
	}
}
