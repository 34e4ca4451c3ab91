package compat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/test/cluster"
	"github.com/strand-data/strand/test/harness"
)

// Transactions with real clients (issue 13). Every scenario records what its producers did
// and what its consumers saw into a cluster.TxnHistory and runs the transactional checker
// over it; the report's row goes to STRAND_FIGURES.

// figure appends a line to the STRAND_FIGURES file that .ci/run prints.
func figure(line string) {
	if name := os.Getenv("STRAND_FIGURES"); name != "" {
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "%s\n", line)
			f.Close()
		}
	}
}

// checkTxn runs the checker over h and fails the test on any anomaly.
func checkTxn(t *testing.T, scenario string, h *cluster.TxnHistory) cluster.TxnReport {
	t.Helper()
	r := cluster.CheckTxn(scenario, h)
	t.Logf("%s\n%s", cluster.TxnTableHeader, r.Row())
	figure(cluster.TxnTableHeader + "\n" + r.Row())
	for _, p := range r.Problems() {
		t.Error(p)
	}
	return r
}

// finalRead is cluster.FinalTxnRead against node.
func finalRead(t *testing.T, ctx context.Context, node *harness.Node, h *cluster.TxnHistory, topics ...string) {
	t.Helper()
	if err := cluster.FinalTxnRead(ctx, h, []kgo.Opt{kgo.SeedBrokers(node.KafkaAddr)}, topics...); err != nil {
		t.Fatal(err)
	}
}

// recordReads consumes topic at isolation until stop, recording every record as consumer
// number id.
func recordReads(t *testing.T, node *harness.Node, h *cluster.TxnHistory, topic string, id int, iso cluster.Isolation, stop <-chan struct{}, wg *sync.WaitGroup) {
	level := kgo.ReadUncommitted()
	if iso == cluster.ReadCommitted {
		level = kgo.ReadCommitted()
	}
	cl := node.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level),
		kgo.FetchMaxWait(100*time.Millisecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		pollUntilStopped(context.Background(), wg, stop, cl, 200*time.Millisecond, func(fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) {
				h.AddTxnRead(cluster.TxnRead{Consumer: id, Isolation: iso, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
					Key: string(r.Key), Value: string(r.Value), At: time.Now()})
			})
		})
	}()
}

// TestFranzGoTransactions: two franz-go transactional producers run interleaved
// transactions over three partitions, a third of them aborted, while a read_committed and
// a read_uncommitted consumer read along; the checker finds no aborted read, no lost or
// duplicated committed record, no transaction seen partially and every partition in order.
func TestFranzGoTransactions(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 3*time.Minute)
	const topic = "ftx"
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	h := &cluster.TxnHistory{}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	recordReads(t, node, h, topic, 1, cluster.ReadCommitted, stop, &readers)
	recordReads(t, node, h, topic, 2, cluster.ReadUncommitted, stop, &readers)

	var producers sync.WaitGroup
	errs := make(chan error, 2)
	for _, id := range []string{"ftx-a", "ftx-b"} {
		producers.Add(1)
		go func() {
			defer producers.Done()
			errs <- runTransactions(ctx, node, h, topic, id, 30, 40)
		}()
	}
	producers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // let the readers catch up before they stop
	close(stop)
	readers.Wait()
	finalRead(t, ctx, node, h, topic)
	r := checkTxn(t, "franz-go commit/abort", h)
	if r.Aborted == 0 || len(h.Reads) == 0 {
		t.Fatalf("the scenario did not exercise aborts (%d) or reads (%d)", r.Aborted, len(h.Reads))
	}
}

// runTransactions runs n transactions of size records each as transactionalID, every third
// aborted, recording each in h.
func runTransactions(ctx context.Context, node *harness.Node, h *cluster.TxnHistory, topic, transactionalID string, n, size int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr), kgo.TransactionalID(transactionalID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(uint64(len(transactionalID)), 7))
	for seq := range n {
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("%s begin #%d: %w", transactionalID, seq, err)
		}
		tx := cluster.Txn{Producer: transactionalID, Seq: seq, Start: time.Now()}
		for i := range size {
			s := cluster.TxnSend{Topic: topic, Partition: rng.Int32N(3), Key: fmt.Sprintf("k%d", i%5),
				Value: fmt.Sprintf("%s#%d-%d", transactionalID, seq, i)}
			cl.Produce(ctx, &kgo.Record{Topic: s.Topic, Partition: s.Partition, Key: []byte(s.Key), Value: []byte(s.Value)}, nil)
			tx.Sends = append(tx.Sends, s)
		}
		commit := kgo.TryCommit
		if seq%3 == 2 {
			commit = kgo.TryAbort
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("%s flush #%d: %w", transactionalID, seq, err)
		}
		err := cl.EndTransaction(ctx, commit)
		tx.End = time.Now()
		switch {
		case err != nil:
			tx.Outcome, tx.Err = cluster.TxnUnknown, err.Error()
		case commit == kgo.TryCommit:
			tx.Outcome = cluster.TxnCommitted
		default:
			tx.Outcome = cluster.TxnAborted
		}
		h.AddTxn(tx)
		if err != nil {
			return fmt.Errorf("%s end #%d: %w", transactionalID, seq, err)
		}
	}
	return nil
}

// rawTxn drives one transactional producer with raw requests, so a test can send what no
// well-behaved client sends: a produce delayed past the end of its transaction.
type rawTxn struct {
	t     *testing.T
	cl    *kgo.Client
	id    string
	pid   int64
	epoch int16
	coord int32
}

func newRawTxn(t *testing.T, ctx context.Context, node *harness.Node, id string) *rawTxn {
	// A client sends AddPartitionsToTxn v3 at most (v4+ is the brokers' batched form), and
	// kgo picks the highest version both sides know unless told otherwise.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	r := &rawTxn{t: t, cl: node.Client(t, kgo.MaxVersions(versions)), id: id}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorType, find.CoordinatorKey = 1, id
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := find.RequestWith(ctx, r.cl)
		if err == nil && resp.ErrorCode == 0 {
			r.coord = resp.NodeID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("find coordinator of %s: %v %v", id, err, resp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(id), 60_000
	resp := r.coordinatorRequest(ctx, init).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	r.pid, r.epoch = resp.ProducerID, resp.ProducerEpoch
	return r
}

// coordinatorRequest sends req to the coordinator, retrying CONCURRENT_TRANSACTIONS and
// coordinator loading as clients do.
func (r *rawTxn) coordinatorRequest(ctx context.Context, req kmsg.Request) kmsg.Response {
	r.t.Helper()
	for range 100 {
		resp, err := r.cl.Broker(int(r.coord)).Request(ctx, req)
		if err != nil {
			r.t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		code := int16(0)
		switch x := resp.(type) {
		case *kmsg.InitProducerIDResponse:
			code = x.ErrorCode
		case *kmsg.EndTxnResponse:
			code = x.ErrorCode
		}
		if code != kerr.ConcurrentTransactions.Code && code != kerr.CoordinatorLoadInProgress.Code {
			return resp
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("%s: still CONCURRENT_TRANSACTIONS", kmsg.NameForKey(req.Key()))
	return nil
}

func (r *rawTxn) addPartition(ctx context.Context, topic string, partition int32) {
	r.t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = r.id, r.pid, r.epoch
	tt := kmsg.NewAddPartitionsToTxnRequestTopic()
	tt.Topic, tt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, tt)
	for range 100 {
		resp := r.coordinatorRequest(ctx, req).(*kmsg.AddPartitionsToTxnResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			r.t.Fatalf("add %s/%d: answered %+v", topic, partition, resp.Topics)
		}
		switch code := resp.Topics[0].Partitions[0].ErrorCode; code {
		case 0:
			return
		case kerr.ConcurrentTransactions.Code: // the previous transaction's markers are still being written
			time.Sleep(20 * time.Millisecond)
		default:
			r.t.Fatalf("add %s/%d: %v", topic, partition, kerr.ErrorForCode(code))
		}
	}
	r.t.Fatalf("add %s/%d: still CONCURRENT_TRANSACTIONS", topic, partition)
}

func (r *rawTxn) end(ctx context.Context, commit bool) {
	r.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = r.id, r.pid, r.epoch, commit
	resp := r.coordinatorRequest(ctx, req).(*kmsg.EndTxnResponse)
	if resp.ErrorCode != 0 {
		r.t.Fatalf("end txn: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// produce sends one transactional batch of values with base sequence seq to topic's
// partition and returns the partition's error.
func (r *rawTxn) produce(ctx context.Context, topic string, partition int32, seq int32, values ...string) error {
	r.t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	raw, err := record.Build(record.Header{Magic: 2, Attributes: 0x10, BaseTimestamp: time.Now().UnixMilli(), ProducerID: r.pid,
		ProducerEpoch: r.epoch, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		r.t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr(r.id), -1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// TestTxnDelayedProduce is the scenario Jepsen found in Kafka-compatible systems (and
// KAFKA-17754 in Kafka): a produce of transaction N that arrives after N ended and N+1
// began. Transaction N adds partition 0 and commits; N+1 adds only partition 1; then N's
// delayed batch reaches partition 0. The broker must refuse it (KIP-890 verification: the
// partition is not in the producer's ongoing transaction), so no transaction opens in
// partition 0 that nobody would end: its last stable offset stays at its high watermark,
// and a read_committed reader sees exactly N's and N+1's committed records.
func TestTxnDelayedProduce(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 2*time.Minute)
	const topic = "late"
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	r := newRawTxn(t, ctx, node, "late-producer")
	h := &cluster.TxnHistory{}

	// A produce to a partition never added to a transaction is refused, and leaves no
	// transaction open.
	if err := r.produce(ctx, topic, 1, 0, "never-added"); err == nil {
		t.Fatal("a transactional produce to a partition never added to the transaction was accepted")
	}

	// Transaction N: partition 0, committed.
	r.addPartition(ctx, topic, 0)
	if err := r.produce(ctx, topic, 0, 0, "n-0", "n-1"); err != nil {
		t.Fatalf("produce of N: %v", err)
	}
	r.end(ctx, true)
	h.AddTxn(cluster.Txn{Producer: r.id, Seq: 0, Outcome: cluster.TxnCommitted, Sends: []cluster.TxnSend{
		{Topic: topic, Partition: 0, Value: "n-0"}, {Topic: topic, Partition: 0, Value: "n-1"}}})

	// Transaction N+1: partition 1 only.
	r.addPartition(ctx, topic, 1)
	if err := r.produce(ctx, topic, 1, 0, "n1-0"); err != nil {
		t.Fatalf("produce of N+1: %v", err)
	}
	// N's delayed batch, the next sequence of partition 0.
	err := r.produce(ctx, topic, 0, 2, "late-0")
	if err == nil {
		t.Fatal("a produce of an ended transaction to a partition not in the ongoing one was accepted")
	}
	t.Logf("delayed produce refused: %v", err)
	r.end(ctx, true)
	h.AddTxn(cluster.Txn{Producer: r.id, Seq: 1, Outcome: cluster.TxnCommitted, Sends: []cluster.TxnSend{{Topic: topic, Partition: 1, Value: "n1-0"}}})

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		e, _ := ends.Lookup(topic, p)
		s, _ := stable.Lookup(topic, p)
		if e.Offset != s.Offset {
			t.Errorf("partition %d: last stable offset %d below the high watermark %d: a transaction hangs", p, s.Offset, e.Offset)
		}
	}
	finalRead(t, ctx, node, h, topic)
	checkTxn(t, "delayed produce (KIP-890)", h)
}

// TestLibrdkafkaTransactions: librdkafka's transactional producer commits, aborts, sends
// a consumer group's offsets in a transaction and is fenced by a second producer with its
// transactional.id; read_committed consumers (librdkafka and kafka-python) see only the
// committed records, a read_uncommitted one sees all (testdata/librdkafka_txn.py).
func TestLibrdkafkaTransactions(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	needPythonClient(t, python, "confluent-kafka")
	needPythonClient(t, python, "kafka-python")
	node := harness.Start(t, harness.Options{})
	adm := kadm.NewClient(node.Client(t))
	ctx := harness.Context(t, time.Minute)
	for _, topic := range []string{"pytxn", "pytxn-src"} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	out := strings.TrimSpace(run(t, "", python, filepath.Join("testdata", "librdkafka_txn.py"), node.KafkaAddr, "pytxn", "pytxn-src", "pytxn-group", "2000"))
	t.Logf("%s", out)
	figure(out)
}
