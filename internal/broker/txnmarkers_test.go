package broker

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/record"
)

// withoutVerification turns KIP-890 verification off (Kafka's
// transaction.partition.verification.enable=false), for tests that drive the partition
// side with producer ids no coordinator knows.
func withoutVerification(c *Config) {
	c.StaticConfigs = map[string]string{"transaction.partition.verification.enable": "false"}
}

// epochTxnRecords is a batch of producer pid's transaction at epoch holding one record per
// value.
func epochTxnRecords(t testing.TB, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	b, err := record.Build(record.Header{Attributes: attrTransactional, BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceTo sends one Produce of batch to partition 0 of topic, acks=all, and returns the
// partition's answer.
func produceTo(t testing.TB, cl *kgo.Client, topic string, transactionalID *string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10_000, transactionalID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, batch
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.Partitions = topic, []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	return request[*kmsg.ProduceResponse](t, cl, req).Topics[0].Partitions[0]
}

// direct sends req to broker b itself: kgo would split a WriteTxnMarkers or
// DescribeProducers by partition leader and fail it for a topic it does not know.
func direct[R kmsg.Response](t testing.TB, cl *kgo.Client, b *Broker, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Broker(int(b.cfg.NodeID)).Request(testContext(t), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp.(R)
}

// writeMarker sends WriteTxnMarkers for one marker on partition 0 of each topic and returns
// the partitions' codes in order.
func writeMarker(t testing.TB, cl *kgo.Client, b *Broker, pid int64, epoch int16, coordinatorEpoch int32, commit bool, topics ...string) []int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Committed = pid, epoch, coordinatorEpoch, commit
	for _, topic := range topics {
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = topic, []int32{0}
		m.Topics = append(m.Topics, mt)
	}
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
	resp := direct[*kmsg.WriteTxnMarkersResponse](t, cl, b, req)
	var codes []int16
	for _, rt := range resp.Markers[0].Topics {
		codes = append(codes, rt.Partitions[0].ErrorCode)
	}
	return codes
}

func describeProducers(t testing.TB, cl *kgo.Client, b *Broker, topic string) kmsg.DescribeProducersResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = []kmsg.DescribeProducersRequestTopic{rt}
	return direct[*kmsg.DescribeProducersResponse](t, cl, b, req).Topics[0].Partitions[0]
}

// TestTransactionalProduceAndMarkers: a transactional producer's records are held from
// read_committed consumers until WriteTxnMarkers commits them, and reported aborted after
// an ABORT; clients may write neither control batches nor transactional ones without a
// transactional id; markers and batches of a fenced epoch, and markers of an older
// coordinator, are refused as Kafka refuses them; DescribeProducers shows the state.
func TestTransactionalProduceAndMarkers(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), withoutVerification)
	cl := client(t, b)
	createTopic(t, cl, "tx", 1, nil)
	txnID := kmsg.StringPtr("t1")
	const pid = 100

	if p := produceTo(t, cl, "tx", nil, epochTxnRecords(t, pid, 0, 0, "x")); p.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional batch without a transactional id: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produceTo(t, cl, "tx", txnID, txnMarker(pid, true)); p.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("a client's control batch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produceTo(t, cl, "tx", txnID, epochTxnRecords(t, pid, 0, 0, "a", "b")); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("transactional produce: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if got := fetchOnce(t, cl, "tx", 0, 1); got.lastStable != 0 || got.values != nil {
		t.Fatalf("read_committed with the transaction open: %+v", got)
	}
	if codes := writeMarker(t, cl, b, pid, 0, 3, true, "tx", "nosuch"); !slices.Equal(codes, []int16{0, kerr.UnknownTopicOrPartition.Code}) {
		t.Fatalf("COMMIT markers: codes %v", codes)
	}
	if got := fetchOnce(t, cl, "tx", 0, 1); got.lastStable != 3 || !slices.Equal(got.values, []string{"a", "b"}) || got.aborted != nil {
		t.Fatalf("read_committed after COMMIT: %+v", got)
	}

	// The next transaction aborts.
	if p := produceTo(t, cl, "tx", txnID, epochTxnRecords(t, pid, 0, 2, "c")); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Fatalf("second transaction: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if codes := writeMarker(t, cl, b, pid, 0, 3, false, "tx"); codes[0] != 0 {
		t.Fatalf("ABORT marker: %v", kerr.ErrorForCode(codes[0]))
	}
	got := fetchOnce(t, cl, "tx", 0, 1)
	if got.lastStable != 5 || !slices.Equal(got.values, []string{"a", "b", "c"}) || !slices.Equal(got.aborted, []abortedTxn{{pid, 3}}) {
		t.Fatalf("read_committed after ABORT: %+v, want the records with producer %d's transaction from 3 aborted", got, pid)
	}

	// Stale coordinator and producer epochs change nothing.
	end := got.next
	if codes := writeMarker(t, cl, b, pid, 0, 2, true, "tx"); codes[0] != kerr.TransactionCoordinatorFenced.Code {
		t.Fatalf("marker from coordinator epoch 2 after 3: %v", kerr.ErrorForCode(codes[0]))
	}
	if codes := writeMarker(t, cl, b, pid, 1, 4, false, "tx"); codes[0] != 0 { // the coordinator bumps the epoch
		t.Fatalf("marker at epoch 1: %v", kerr.ErrorForCode(codes[0]))
	}
	end++
	if codes := writeMarker(t, cl, b, pid, 0, 4, false, "tx"); codes[0] != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("marker at epoch 0 after 1: %v", kerr.ErrorForCode(codes[0]))
	}
	if p := produceTo(t, cl, "tx", txnID, epochTxnRecords(t, pid, 0, 3, "zombie")); p.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("produce at a fenced epoch: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if got := fetchOnce(t, cl, "tx", 0, 0); got.next != end || got.highWatermark != end {
		t.Fatalf("refused writes changed the log: %+v, want it to end at %d", got, end)
	}

	// A transactional batch gets the record checks of any other: a compacted topic's
	// records need keys.
	createTopic(t, cl, "txcompact", 1, map[string]string{"cleanup.policy": "compact"})
	if p := produceTo(t, cl, "txcompact", txnID, epochTxnRecords(t, pid, 1, 0, "keyless")); p.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("keyless transactional record to a compacted topic: %v", kerr.ErrorForCode(p.ErrorCode))
	}

	dp := describeProducers(t, cl, b, "tx")
	if dp.ErrorCode != 0 || len(dp.ActiveProducers) != 1 {
		t.Fatalf("DescribeProducers: %+v", dp)
	}
	if ap := dp.ActiveProducers[0]; ap.ProducerID != pid || ap.ProducerEpoch != 1 || ap.CoordinatorEpoch != 4 || ap.CurrentTxnStartOffset != -1 || ap.LastSequence != -1 {
		t.Fatalf("producer %d: %+v, want epoch 1, coordinator epoch 4, no transaction and no sequence at the new epoch", pid, ap)
	}
	if p := describeProducers(t, cl, b, "nosuch"); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("DescribeProducers of an unknown topic: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}

// refusingVerifier answers KIP-890 verification with err, counting the questions.
type refusingVerifier struct {
	mu    sync.Mutex
	err   error
	asked []string
}

func (v *refusingVerifier) VerifyPartition(ctx context.Context, transactionalID string, producerID int64, epoch int16, topic string, partition int32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, transactionalID+"/"+topic)
	return v.err
}

func (v *refusingVerifier) set(err error) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.err = err
	return len(v.asked)
}

// TestTransactionalProduceVerification: the first batch of a transaction in a partition is
// written only if the transaction coordinator confirms the partition is in the producer's
// transaction (KIP-890 part 1); a refusal is the produce's answer and writes nothing;
// batches of a transaction already open here are not asked about.
func TestTransactionalProduceVerification(t *testing.T) {
	v := &refusingVerifier{err: kerr.InvalidTxnState}
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) { c.TxnVerifier = v })
	cl := client(t, b)
	createTopic(t, cl, "verified", 1, nil)
	txnID := kmsg.StringPtr("t2")

	if p := produceTo(t, cl, "verified", txnID, epochTxnRecords(t, 7, 0, 0, "late")); p.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("refused verification: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	part, _ := b.partition("verified", 0)
	if end := part.Log().LogEndOffset(); end != 0 || part.Log().HasOpenTransaction(7) {
		t.Fatalf("a refused produce wrote: log end %d", end)
	}
	if n := v.set(nil); n != 1 {
		t.Fatalf("verifier asked %d times, want 1", n)
	}
	for seq, value := range []string{"a", "b"} {
		if p := produceTo(t, cl, "verified", txnID, epochTxnRecords(t, 7, 0, int32(seq), value)); p.ErrorCode != 0 {
			t.Fatalf("verified produce %d: %v", seq, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if n := v.set(nil); n != 2 {
		t.Fatalf("verifier asked %d times, want 2: the open transaction's second batch needs no asking", n)
	}
	// Idempotent, non-transactional batches are never verified.
	idem, _ := record.Build(record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: 8, BaseSequence: 0}, []record.Record{{Value: []byte("i")}}, record.CodecNone)
	if p := produceTo(t, cl, "verified", nil, idem); p.ErrorCode != 0 {
		t.Fatalf("idempotent produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if n := v.set(nil); n != 2 {
		t.Fatalf("verifier asked %d times after an idempotent produce, want 2", n)
	}
}

// TestTxnOffsetCommitThroughMarkers: a transaction's offsets, written by TxnOffsetCommit to
// __consumer_offsets, become the group's committed offsets only once WriteTxnMarkers
// commits the transaction in the group's __consumer_offsets partition; until then a
// RequireStable OffsetFetch is told UNSTABLE_OFFSET_COMMIT. A producer fenced by a newer
// epoch cannot commit offsets.
func TestTxnOffsetCommitThroughMarkers(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), withoutVerification)
	cl := client(t, b)
	createTopic(t, cl, "in", 1, nil)
	const pid, groupID = 200, "etl"
	txnCommit := func(epoch int16, offset int64) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = "t3", groupID, pid, epoch, -1
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Offset = offset
		id, _ := b.TopicID("in") // version 6 names topics by id
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "in", TopicID: id, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
		return request[*kmsg.TxnOffsetCommitResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode
	}
	fetch := func() (int16, int64) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.RequireStable = true
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: groupID, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "in", Partitions: []int32{0}}}}}
		p := request[*kmsg.OffsetFetchResponse](t, cl, req).Groups[0].Topics[0].Partitions[0]
		return p.ErrorCode, p.Offset
	}
	marker := func(epoch int16, commit bool) int16 {
		n, _ := b.PartitionCount(group.OffsetsTopic)
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		req.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: pid, ProducerEpoch: epoch, Committed: commit, CoordinatorEpoch: 1,
			Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: group.OffsetsTopic, Partitions: []int32{group.PartitionFor(groupID, n)}}}}}
		return direct[*kmsg.WriteTxnMarkersResponse](t, cl, b, req).Markers[0].Topics[0].Partitions[0].ErrorCode
	}

	if code := txnCommit(0, 42); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if code, off := fetch(); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("RequireStable fetch with the transaction open: %v offset %d", kerr.ErrorForCode(code), off)
	}
	if code := marker(0, true); code != 0 {
		t.Fatalf("COMMIT marker: %v", kerr.ErrorForCode(code))
	}
	if code, off := fetch(); code != 0 || off != 42 {
		t.Fatalf("after COMMIT: %v offset %d, want 42", kerr.ErrorForCode(code), off)
	}
	if code := txnCommit(0, 50); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := marker(1, false); code != 0 { // the coordinator fences epoch 0 and aborts
		t.Fatalf("ABORT marker: %v", kerr.ErrorForCode(code))
	}
	if code, off := fetch(); code != 0 || off != 42 {
		t.Fatalf("after ABORT: %v offset %d, want 42", kerr.ErrorForCode(code), off)
	}
	if code := txnCommit(0, 60); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("TxnOffsetCommit of a fenced epoch: %v", kerr.ErrorForCode(code))
	}
	if code, off := fetch(); code != 0 || off != 42 {
		t.Fatalf("after the fenced commit: %v offset %d, want 42", kerr.ErrorForCode(code), off)
	}
}

// verifierFunc is a TxnVerifier that runs a function.
type verifierFunc func(producerID int64, epoch int16) error

func (f verifierFunc) VerifyPartition(ctx context.Context, transactionalID string, producerID int64, epoch int16, topic string, partition int32) error {
	return f(producerID, epoch)
}

// TestVerifiedProduceOvertakenByMarker: the delayed produce of Jepsen's hanging-transaction
// scenario. The coordinator confirms the partition, but the transaction's ABORT marker
// lands before the produce's batch: the batch is refused (INVALID_TXN_STATE) and opens no
// transaction that would hold the last stable offset forever.
func TestVerifiedProduceOvertakenByMarker(t *testing.T) {
	var started atomic.Pointer[Broker] // the verifier runs on connection goroutines
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) {
		c.TxnVerifier = verifierFunc(func(pid int64, epoch int16) error {
			// The coordinator said yes, then the transaction timed out and was aborted.
			part, _ := started.Load().partition("late", 0)
			_, err := part.AppendMarker(record.EndTxnMarker{ProducerID: pid, ProducerEpoch: epoch, CoordinatorEpoch: 1}, 0, 1)
			return err
		})
	})
	started.Store(b)
	cl := client(t, b)
	createTopic(t, cl, "late", 1, nil)
	part, _ := b.partition("late", 0)
	if p := produceTo(t, cl, "late", kmsg.StringPtr("t4"), epochTxnRecords(t, 9, 0, 0, "late")); p.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("produce overtaken by its transaction's marker: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if part.Log().HasOpenTransaction(9) {
		t.Fatal("the late batch opened a transaction")
	}
	if err := part.WaitCommitted(testContext(t), 1, true, 1); err != nil {
		t.Fatal(err)
	}
	if lso, end := part.LastStableOffset(), part.Log().LogEndOffset(); lso != end || end != 1 {
		t.Fatalf("LSO %d, log end %d: want both at 1, after the marker alone", lso, end)
	}
}

// TestMarkerNeedsMinInSyncReplicas: markers are appended as acks=all, so a partition whose
// ISR is below min.insync.replicas refuses them with NOT_ENOUGH_REPLICAS, which the
// coordinator retries, and writes nothing.
func TestMarkerNeedsMinInSyncReplicas(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "fewisr", 1, map[string]string{"min.insync.replicas": "2"})
	if codes := writeMarker(t, cl, b, 1, 0, 1, true, "fewisr"); codes[0] != kerr.NotEnoughReplicas.Code {
		t.Fatalf("marker with 1 in-sync replica of 2 required: %v", kerr.ErrorForCode(codes[0]))
	}
	if part, _ := b.partition("fewisr", 0); part.Log().LogEndOffset() != 0 {
		t.Fatalf("the refused marker was written: log end %d", part.Log().LogEndOffset())
	}
}

// TestTransactionsAcrossRestart: what markers and transactional offsets left survives a
// restart: the coordinator epoch still fences an older coordinator's marker, an open
// transaction still holds the last stable offset, and a transaction's pending offsets are
// replayed as pending until its COMMIT marker.
func TestTransactionsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerWith(t, dir, withoutVerification)
	cl := client(t, b)
	createTopic(t, cl, "rs", 1, nil)
	const pid, groupID = 300, "rsg"
	txnID := kmsg.StringPtr("t5")
	if p := produceTo(t, cl, "rs", txnID, epochTxnRecords(t, pid, 0, 0, "a")); p.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(p.ErrorCode))
	}
	if codes := writeMarker(t, cl, b, pid, 0, 5, true, "rs"); codes[0] != 0 {
		t.Fatal(kerr.ErrorForCode(codes[0]))
	}
	if p := produceTo(t, cl, "rs", txnID, epochTxnRecords(t, pid, 0, 1, "b")); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("second transaction: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.Generation = *txnID, groupID, pid, -1
	id, _ := b.TopicID("rs")
	commit.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "rs", TopicID: id, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3, LeaderEpoch: -1}}}}
	if code := request[*kmsg.TxnOffsetCommitResponse](t, cl, commit).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	cl.Close()
	stop()

	b, _ = startBrokerWith(t, dir, withoutVerification)
	cl = client(t, b)
	if codes := writeMarker(t, cl, b, pid, 0, 4, true, "rs"); codes[0] != kerr.TransactionCoordinatorFenced.Code {
		t.Fatalf("marker of an older coordinator after the restart: %v", kerr.ErrorForCode(codes[0]))
	}
	if got := fetchOnce(t, cl, "rs", 0, 1); got.lastStable != 2 || !slices.Equal(got.values, []string{"a"}) {
		t.Fatalf("read_committed after the restart: %+v, want the open transaction to hold the LSO at 2", got)
	}
	fetch := func() (int16, int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.RequireStable = true
			req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: groupID, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "rs", Partitions: []int32{0}}}}}
			g := request[*kmsg.OffsetFetchResponse](t, cl, req).Groups[0]
			if (g.ErrorCode == kerr.NotCoordinator.Code || g.ErrorCode == kerr.CoordinatorLoadInProgress.Code) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // the coordinator loads __consumer_offsets
				continue
			}
			if g.ErrorCode != 0 {
				t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(g.ErrorCode))
			}
			p := g.Topics[0].Partitions[0]
			return p.ErrorCode, p.Offset
		}
	}
	if code, _ := fetch(); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("replayed transactional offset: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
	}
	n, _ := b.PartitionCount(group.OffsetsTopic)
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: pid, ProducerEpoch: 0, Committed: true, CoordinatorEpoch: 5,
		Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "rs", Partitions: []int32{0}}, {Topic: group.OffsetsTopic, Partitions: []int32{group.PartitionFor(groupID, n)}}}}}
	for _, rt := range direct[*kmsg.WriteTxnMarkersResponse](t, cl, b, req).Markers[0].Topics {
		if code := rt.Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("COMMIT marker in %s: %v", rt.Topic, kerr.ErrorForCode(code))
		}
	}
	if code, off := fetch(); code != 0 || off != 3 {
		t.Fatalf("after COMMIT: %v offset %d, want 3", kerr.ErrorForCode(code), off)
	}
	if got := fetchOnce(t, cl, "rs", 0, 1); !slices.Equal(got.values, []string{"a", "b"}) {
		t.Fatalf("read_committed after COMMIT: %+v", got)
	}
}

// TestTxnOffsetCommitVerified: a transaction's offsets are verified with the transaction
// coordinator like any transactional write to a partition (the group's __consumer_offsets
// partition, which AddOffsetsToTxn put in the transaction); a refusal is the commit's
// answer and leaves nothing pending.
func TestTxnOffsetCommitVerified(t *testing.T) {
	v := &refusingVerifier{err: kerr.InvalidTxnState}
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) { c.TxnVerifier = v })
	cl := client(t, b)
	createTopic(t, cl, "vin", 1, nil)
	commit := func() int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.Generation = "t6", "vgroup", 400, -1
		id, _ := b.TopicID("vin")
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "vin", TopicID: id, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 9, LeaderEpoch: -1}}}}
		return request[*kmsg.TxnOffsetCommitResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode
	}
	stable := func() int16 {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.RequireStable = true
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "vgroup", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "vin", Partitions: []int32{0}}}}}
		return request[*kmsg.OffsetFetchResponse](t, cl, req).Groups[0].Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(); code != kerr.InvalidTxnState.Code {
		t.Fatalf("TxnOffsetCommit refused by verification: %v", kerr.ErrorForCode(code))
	}
	if code := stable(); code != 0 {
		t.Fatalf("a refused TxnOffsetCommit left offsets pending: %v", kerr.ErrorForCode(code))
	}
	v.set(nil)
	if code := commit(); code != 0 {
		t.Fatalf("verified TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if code := stable(); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("verified commit not pending: %v", kerr.ErrorForCode(code))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if want := "t6/" + group.OffsetsTopic; len(v.asked) != 2 || v.asked[0] != want || v.asked[1] != want {
		t.Fatalf("verifier asked %v, want %s twice", v.asked, want)
	}
}
