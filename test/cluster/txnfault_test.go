package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTxnKillCoordinatorAndLeader: on 3 nodes (RF 3, min.insync.replicas 2), three
// franz-go transactional producers run transactions (every fourth aborted) while a
// read_committed consumer reads along; the node coordinating the first producer's
// transactional id is killed with SIGKILL and restarted, then the leader of a partition.
// A producer whose transaction failed starts over with a new client under the same
// transactional id, which fences the old one and aborts what it left open. The checker
// must find nothing: no committed record lost, none duplicated, no aborted read, no
// transaction seen partially.
func TestTxnKillCoordinatorAndLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of strand processes")
	}
	if err := clusterForms(t); err != nil {
		t.Fatalf("three voters did not form a ready cluster (probe): %v", firstLine(err.Error()))
	}
	c := Start(t, Options{Nodes: 3, BrokerConfigs: knownBrokerConfigs()})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "txn-faults"
	minISR := "2"
	if err := c.CreateTopic(ctx, topic, 6, 3, map[string]*string{"min.insync.replicas": &minISR}); err != nil {
		t.Fatal(err)
	}
	h := &TxnHistory{}
	base := []kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.MetadataMinAge(100 * time.Millisecond), kgo.MetadataMaxAge(2 * time.Second),
		kgo.DialTimeout(2 * time.Second)}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// A read_committed reader; a new consumer number after every error it sees, since
	// the checks take one consumer's reads as one uninterrupted range.
	reader := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := reader.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				h.AddTxnRead(TxnRead{Consumer: 1, Isolation: ReadCommitted, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
					Key: string(r.Key), Value: string(r.Value), At: time.Now()})
			})
		}
	}()

	ids := []string{"txf-0", "txf-1", "txf-2"}
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			txnProducer(ctx, t, h, base, topic, id, uint64(i), stop)
		}()
	}

	hold := func() { time.Sleep(4 * time.Second) }
	hold()
	coord, err := txnCoordinator(ctx, c, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	n := c.Node(coord)
	t.Logf("kill -9 node %d, coordinator of %s", n.ID, ids[0])
	n.Kill()
	hold()
	if err := n.Start(restartLimit); err != nil {
		t.Fatal(err)
	}
	hold()
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n = c.Node(parts[1].Leader)
	t.Logf("kill -9 node %d, leader of %s/1", n.ID, topic)
	n.Kill()
	hold()
	if err := n.Start(restartLimit); err != nil {
		t.Fatal(err)
	}
	hold()
	close(stop)
	wg.Wait()

	if err := FinalTxnRead(ctx, h, base, topic); err != nil {
		t.Fatal(err)
	}
	r := CheckTxn("3 nodes kill -9 coord+leader", h)
	t.Logf("%s\n%s", TxnTableHeader, r.Row())
	summaryMu.Lock()
	txnSummary = append(txnSummary, r.Row())
	summaryMu.Unlock()
	for _, p := range r.Problems() {
		t.Error(p)
	}
	// Show the log around each aborted read: batches, markers and what read_committed
	// fetches report.
	for i, a := range r.AbortedReads {
		if i == 2 {
			break
		}
		lines, err := DescribeBatches(ctx, base, a.Topic, a.Partition, max(0, a.Offset-40), a.Offset+40)
		t.Logf("around %s/%d@%d (err %v):\n%s", a.Topic, a.Partition, a.Offset, err, strings.Join(lines, "\n"))
	}
	if r.Committed < 10 {
		t.Errorf("only %d transactions committed", r.Committed)
	}
}

// txnSummary collects the transactional scenarios' rows for TestMain's table.
var txnSummary []string

// txnProducer runs transactions of 20 records as transactionalID until stop, recording
// each in h. A transaction that fails ends as unknown and the producer starts over with a
// new client (its InitProducerId fences the old and aborts what it left open).
func txnProducer(ctx context.Context, t *testing.T, h *TxnHistory, base []kgo.Opt, topic, transactionalID string, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 11))
	seq := 0
	for {
		cl, err := kgo.NewClient(append(base, kgo.TransactionalID(transactionalID), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionTimeout(10*time.Second), kgo.RequestTimeoutOverhead(5*time.Second))...)
		if err != nil {
			t.Error(err)
			return
		}
		for {
			select {
			case <-stop:
				cl.Close()
				return
			default:
			}
			if err := runOneTxn(ctx, cl, h, topic, transactionalID, seq, rng); err != nil {
				seq++
				break // a new client
			}
			seq++
		}
		cl.Close()
		if ctx.Err() != nil {
			return
		}
	}
}

// runOneTxn runs transaction seq and records it; an error means the client must be replaced.
func runOneTxn(ctx context.Context, cl *kgo.Client, h *TxnHistory, topic, id string, seq int, rng *rand.Rand) error {
	tx := Txn{Producer: id, Seq: seq, Start: time.Now()}
	defer func() { tx.End = time.Now(); h.AddTxn(tx) }()
	if err := cl.BeginTransaction(); err != nil {
		tx.Err = err.Error()
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var mu sync.Mutex
	var produceErr error
	for i := range 20 {
		s := TxnSend{Topic: topic, Partition: rng.Int32N(6), Key: fmt.Sprintf("k%d", i%7), Value: fmt.Sprintf("%s#%d-%d", id, seq, i)}
		tx.Sends = append(tx.Sends, s)
		cl.Produce(tctx, &kgo.Record{Topic: s.Topic, Partition: s.Partition, Key: []byte(s.Key), Value: []byte(s.Value)}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				produceErr = err
				mu.Unlock()
			}
		})
	}
	ferr := cl.Flush(tctx)
	mu.Lock()
	perr := produceErr
	mu.Unlock()
	try := kgo.TryCommit
	if seq%4 == 3 || ferr != nil || perr != nil {
		try = kgo.TryAbort
	}
	if ferr != nil {
		// Flush gave up with records still in flight. franz-go's documented way out: fail
		// what is buffered and wait for requests in flight to end, then abort. Aborting
		// with requests still in flight would let one land after the abort, and without
		// KIP-890 part 2 (a new epoch per transaction) it could join the next transaction.
		if err := cl.AbortBufferedRecords(ctx); err != nil {
			tx.Outcome, tx.Err = TxnUnknown, err.Error()
			return err
		}
	}
	err := cl.EndTransaction(tctx, try)
	switch {
	case err != nil:
		tx.Outcome, tx.Err = TxnUnknown, err.Error()
		return err
	case try == kgo.TryCommit:
		tx.Outcome = TxnCommitted
	default:
		tx.Outcome = TxnAborted
	}
	return errors.Join(ferr, perr)
}

// txnCoordinator is the node coordinating transactionalID, by FindCoordinator.
func txnCoordinator(ctx context.Context, c *Cluster, transactionalID string) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...))
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey = 1, transactionalID
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return resp.NodeID, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("find the coordinator of %s: %v", transactionalID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
