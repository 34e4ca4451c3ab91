package compat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/cluster"
	"github.com/strand-data/strand/test/harness"
)

// The exactly-once ETL chain (issue 13), Kafka's transactional copier three times over:
// txc-in → stage 1 → txc-s1 → stage 2 → txc-s2 → stage 3 → txc-out. Each stage is a
// consumer group of franz-go GroupTransactSession members reading read_committed: each
// transaction carries the outputs of what was polled and the input offsets
// (TxnOffsetCommit), so a member killed mid-transaction loses its whole transaction and its
// successor redoes it. Members run as child processes so they can be killed with SIGKILL.
var txcTopics = []string{"txc-in", "txc-s1", "txc-s2", "txc-out"}

const (
	txcPartitions = 6
	txcMemberEnv  = "STRAND_TXC_MEMBER" // broker,stage,name,incarnation: run TestTxnChainMember
)

// txcReport is one line a member prints per transaction: "begin" with its sends before
// EndTxn (so a member killed inside EndTxn leaves its transaction recorded, unknown), then
// "end" with the outcome.
type txcReport struct {
	Event    string   `json:"event"` // begin, end
	Producer string   `json:"producer"`
	Seq      int      `json:"seq"`
	Sends    [][5]any `json:"sends,omitempty"` // topic, partition, key, value, source
	Outcome  string   `json:"outcome,omitempty"`
	Err      string   `json:"err,omitempty"`
}

// TestTxnChainMember is one member of one stage, run by TestTxnChain as a child process.
func TestTxnChainMember(t *testing.T) {
	env := os.Getenv(txcMemberEnv)
	if env == "" {
		t.Skip("only runs as TestTxnChain's child")
	}
	parts := strings.Split(env, ",")
	if len(parts) != 4 {
		t.Fatalf("%s=%q: want broker,stage,name,incarnation", txcMemberEnv, env)
	}
	broker, name := parts[0], parts[2]
	var stage, incarnation int
	if _, err := fmt.Sscan(parts[1], &stage); err != nil || stage < 1 || stage > 3 {
		t.Fatalf("%s=%q: bad stage", txcMemberEnv, env)
	}
	if _, err := fmt.Sscan(parts[3], &incarnation); err != nil || incarnation < 0 {
		t.Fatalf("%s=%q: bad incarnation", txcMemberEnv, env)
	}
	id := fmt.Sprintf("txc-%d-%s", stage, name)
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(broker),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(20*time.Second),
		kgo.ConsumerGroup(fmt.Sprintf("txc-stage-%d", stage)),
		kgo.ConsumeTopics(txcTopics[stage-1]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RebalanceTimeout(15*time.Second),
		kgo.DefaultProduceTopic(txcTopics[stage]),
		kgo.ProducerLinger(time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(os.Stdout)
	var out sync.Mutex
	say := func(r txcReport) {
		out.Lock()
		defer out.Unlock()
		enc.Encode(r)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3) // the parent is gone
	}()
	ctx := context.Background()
	// A process that takes over a killed member's transactional id numbers its transactions
	// after all of its predecessor's, so producer and number name one transaction, and its
	// output values (which carry them) stay unique.
	for seq := incarnation * 1_000_000; ; {
		pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := sess.PollRecords(pollCtx, 2000)
		cancel()
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			fmt.Fprintln(os.Stderr, "begin:", err)
			os.Exit(2)
		}
		rep := txcReport{Event: "begin", Producer: id, Seq: seq}
		var mu sync.Mutex
		var wg sync.WaitGroup
		fetches.EachRecord(func(r *kgo.Record) {
			v := fmt.Sprintf("%s|%d:%s#%d", r.Value, stage, name, seq)
			wg.Add(1)
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: []byte(v)}, func(p *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				partition := int32(-1)
				if err == nil {
					partition = p.Partition
				}
				rep.Sends = append(rep.Sends, [5]any{txcTopics[stage], partition, string(r.Key), v, string(r.Value)})
			})
		})
		wg.Wait()
		say(rep)
		committed, err := sess.End(ctx, kgo.TryCommit)
		end := txcReport{Event: "end", Producer: id, Seq: seq, Outcome: "aborted"}
		switch {
		case err != nil:
			end.Outcome, end.Err = "unknown", err.Error()
		case committed:
			end.Outcome = "committed"
		}
		say(end)
		seq++
	}
}

// txcMember is a running TestTxnChainMember.
type txcMember struct {
	stage       int
	name        string
	incarnation int
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	done        chan struct{}
}

// txcRun runs the members and folds their reports into the history.
type txcRun struct {
	t      *testing.T
	broker string
	h      *cluster.TxnHistory
	mu     sync.Mutex
	txns   map[string]*cluster.Txn // producer#seq → the transaction, until its end line
	// delivered holds the input values whose copies a committed transaction of the last
	// stage wrote: the run is over when it holds every input.
	delivered map[string]bool
	stderr    strings.Builder
}

func (c *txcRun) start(stage int, name string, incarnation int) *txcMember {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTxnChainMember$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%s,%d", txcMemberEnv, c.broker, stage, name, incarnation))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m := &txcMember{stage: stage, name: name, incarnation: incarnation, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r txcReport
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue // the test framework's own lines
			}
			c.note(r)
		}
		cmd.Wait()
	}()
	c.t.Cleanup(func() { c.kill(m) })
	return m
}

func (c *txcRun) note(r txcReport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := fmt.Sprintf("%s#%d", r.Producer, r.Seq)
	switch r.Event {
	case "begin":
		tx := &cluster.Txn{Producer: r.Producer, Seq: r.Seq, Outcome: cluster.TxnUnknown, Start: time.Now()}
		for _, s := range r.Sends {
			p, _ := s[1].(float64)
			tx.Sends = append(tx.Sends, cluster.TxnSend{Topic: s[0].(string), Partition: int32(p), Key: s[2].(string),
				Value: s[3].(string), Source: s[4].(string)})
		}
		c.txns[key] = tx
	case "end":
		tx, ok := c.txns[key]
		if !ok {
			return
		}
		switch r.Outcome {
		case "committed":
			tx.Outcome = cluster.TxnCommitted
			for _, s := range tx.Sends {
				if s.Topic == txcTopics[len(txcTopics)-1] {
					root, _, _ := strings.Cut(s.Value, "|")
					c.delivered[root] = true
				}
			}
		case "aborted":
			tx.Outcome = cluster.TxnAborted
		default:
			tx.Err = r.Err
		}
		tx.End = time.Now()
	}
}

// kill ends m with SIGKILL and waits for its reports to be read.
func (c *txcRun) kill(m *txcMember) {
	if m.cmd.Process != nil {
		m.cmd.Process.Signal(syscall.SIGKILL)
	}
	m.stdin.Close()
	<-m.done
}

// TestTxnChain: 3 stages of 3 GroupTransactSession members move the input through the
// chain while members are killed with SIGKILL and replaced (their successor takes the same
// transactional id and fences them) and the broker restarts; every input record reaches
// txc-out exactly once, in per-key order, and the checker finds no anomaly.
func TestTxnChain(t *testing.T) {
	records := 30_000
	if testing.Short() {
		records = 6_000
	}
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 6*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	for _, topic := range txcTopics {
		if _, err := adm.CreateTopic(ctx, txcPartitions, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	h := &cluster.TxnHistory{Chain: txcTopics}
	run := &txcRun{t: t, broker: node.KafkaAddr, h: h, txns: map[string]*cluster.Txn{}, delivered: map[string]bool{}}

	// The input: plain acks=all writes of unique values, 50 keys.
	producer := node.Client(t, kgo.DefaultProduceTopic(txcTopics[0]))
	produce := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			s := cluster.TxnSend{Topic: txcTopics[0], Key: fmt.Sprintf("k%d", i%50), Value: fmt.Sprintf("in-%d", i)}
			wg.Add(1)
			producer.Produce(ctx, &kgo.Record{Key: []byte(s.Key), Value: []byte(s.Value)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				tx := cluster.Txn{Outcome: cluster.TxnCommitted}
				if err != nil {
					tx.Outcome, s.Err = cluster.TxnUnknown, err.Error()
				}
				s.Partition = r.Partition
				tx.Sends = []cluster.TxnSend{s}
				h.AddTxn(tx)
			})
		}
		wg.Wait()
	}

	members := map[string]*txcMember{}
	for stage := 1; stage <= 3; stage++ {
		for _, name := range []string{"a", "b", "c"} {
			members[fmt.Sprintf("%d%s", stage, name)] = run.start(stage, name, 0)
		}
	}
	produce(0, records/3)
	// Kill a member of stage 2 and one of stage 1 while records flow; each is replaced by a
	// process with the same transactional id.
	for _, victim := range []string{"2b", "1a"} {
		time.Sleep(2 * time.Second)
		m := members[victim]
		run.kill(m)
		t.Logf("killed %s (pid %d)", victim, m.cmd.Process.Pid)
		members[victim] = run.start(m.stage, m.name, m.incarnation+1)
	}
	produce(records/3, 2*records/3)
	// A broker restart with the chain running.
	node.Restart(t)
	t.Log("broker restarted")
	producer = node.Client(t, kgo.DefaultProduceTopic(txcTopics[0]))
	produce(2*records/3, records)

	// Wait until committed transactions of the last stage carry every input record.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		run.mu.Lock()
		n, errs := len(run.delivered), run.stderr.String()
		run.mu.Unlock()
		if n >= records {
			break
		}
		if time.Now().After(deadline) {
			lags := []int64{txcLag(ctx, adm, 1), txcLag(ctx, adm, 2), txcLag(ctx, adm, 3)}
			t.Fatalf("%d of %d inputs delivered; stage lags %v; members' stderr:\n%s", n, records, lags, tail(errs, 4000))
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, m := range members {
		run.kill(m)
	}
	run.mu.Lock()
	for _, tx := range run.txns {
		h.AddTxn(*tx)
	}
	run.mu.Unlock()
	finalRead(t, ctx, node, h, txcTopics...)
	r := checkTxn(t, "franz-go chain, kills+restart", h)
	if r.ChainInputs != records {
		t.Errorf("the final read found %d input records, want %d", r.ChainInputs, records)
	}
}

// txcLag is how far stage's group is behind its input's last stable offset (-1 while the
// group has committed nothing), for the failure message: a marker after a group's last
// record counts 1, since a group commits the offset after its last record.
func txcLag(ctx context.Context, adm *kadm.Client, stage int) int64 {
	topic := txcTopics[stage-1]
	committed, err := adm.FetchOffsets(ctx, fmt.Sprintf("txc-stage-%d", stage))
	if err != nil {
		return -1
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	var lag int64
	ok := true
	stable.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(topic, o.Partition)
		if !found {
			if o.Offset > 0 {
				ok = false
			}
			return
		}
		lag += max(0, o.Offset-c.At)
	})
	if !ok {
		return -1
	}
	return lag
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
