package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/txn"
)

// The transaction coordinator (DESIGN D11) lives in internal/txn; this file ties it to the
// node as the group coordinator is tied in groups.go: it runs for the __transaction_state
// partitions this node leads and moves with their leadership; its markers reach partition
// leaders as WriteTxnMarkers requests, and partition leaders ask it whether a partition was
// added to a transaction (KIP-890 part 1) with AddPartitionsToTxn v4+ (VerifyOnly).

// txnAPIs are answered by the transaction coordinator. InitProducerId is not among them:
// the broker answers it for idempotent producers and relays it only when it carries a
// transactional id.
var txnAPIs = (&txn.Coordinator{}).SupportedVersions()

func init() { supported = append(supported, txnAPIs...) }

func isTxnAPI(key int16) bool {
	for _, k := range txnAPIs {
		if k.ApiKey == key && key != int16(kmsg.InitProducerID) {
			return true
		}
	}
	return false
}

// txnEnv is what the coordinator needs from the node.
type txnEnv struct{ b *Broker }

func (e txnEnv) AllocateProducerID(ctx context.Context) (int64, error) {
	return e.b.allocateProducerID(ctx)
}

func (e txnEnv) PartitionExists(topic string, partition int32) bool {
	t, ok := e.b.meta.State().Topics[topic]
	return ok && partition >= 0 && int(partition) < len(t.Partitions)
}

func (e txnEnv) OffsetsPartition(groupID string) int32 { return e.b.groups.PartitionOf(groupID) }

// startTxns starts the coordinator for the local __transaction_state partitions this node
// leads; as for groups, the topic is created at the first FindCoordinator for a
// transactional id.
func (b *Broker) startTxns(ctx context.Context, client *kgo.Client) error {
	s := b.meta.State()
	b.txnClient = client
	b.txns = txn.NewCoordinator(txn.Config{
		Partitions:         int32(b.brokerConfigInt(s, "transaction.state.log.num.partitions")),
		MaxTimeout:         time.Duration(b.brokerConfigInt(s, "transaction.max.timeout.ms")) * time.Millisecond,
		AbortInterval:      time.Duration(b.brokerConfigInt(s, "transaction.abort.timed.out.transaction.cleanup.interval.ms")) * time.Millisecond,
		IDExpiration:       time.Duration(b.brokerConfigInt(s, "transactional.id.expiration.ms")) * time.Millisecond,
		ExpirationInterval: time.Duration(b.brokerConfigInt(s, "transaction.remove.expired.transaction.cleanup.interval.ms")) * time.Millisecond,
		Logger:             b.log,
	}, txnEnv{b}, txnMarkers{b})
	switch v, _, _ := b.brokerConfig(s, "transaction.partition.verification.enable"); {
	case b.cfg.TxnVerifier != nil:
		b.txnVerifier = b.cfg.TxnVerifier
	case v != "false":
		b.txnVerifier = txnVerifier{b}
	}
	return b.loadTxns(ctx)
}

// newInterBrokerClient is the client this node uses to send requests to other nodes (and
// to itself): markers to partition leaders, verification to transaction coordinators.
// With security on, extra carries the node's own TLS and SASL login (internalClientOpts).
func newInterBrokerClient(seed string, node int32, extra ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.ClientID(fmt.Sprintf("strand-broker-%d", node)),
		kgo.WithLogger(kgo.BasicLogger(io.Discard, kgo.LogLevelNone, nil))}, extra...)...)
}

// ensureTxnTopic creates __transaction_state if it does not exist yet, as Kafka does at the
// first FindCoordinator for a transactional id.
func (b *Broker) ensureTxnTopic(ctx context.Context) error {
	s := b.meta.State()
	if _, ok := s.Topics[txn.StateTopic]; ok {
		return nil
	}
	rf := max(min(int(b.brokerConfigInt(s, "transaction.state.log.replication.factor")), len(s.LiveBrokers())), 1)
	minISR := min(int(b.brokerConfigInt(s, "transaction.state.log.min.isr")), rf)
	_, err := b.createTopic(ctx, cluster.TopicSpec{Name: txn.StateTopic, Partitions: int32(b.brokerConfigInt(s, "transaction.state.log.num.partitions")),
		ReplicationFactor: int16(rf), Configs: map[string]string{"cleanup.policy": "compact", "compression.type": "uncompressed",
			"min.insync.replicas": fmt.Sprint(minISR), "segment.bytes": fmt.Sprint(b.brokerConfigInt(s, "transaction.state.log.segment.bytes"))},
		Internal: true}, false)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("create %s: %w", txn.StateTopic, err)
	}
	return b.loadTxns(ctx)
}

// loadTxns hands every local __transaction_state partition this node leads to the
// coordinator, with the partition's leader epoch as the coordinator epoch (as Kafka), and
// unloads those it no longer leads.
func (b *Broker) loadTxns(ctx context.Context) error {
	if b.txns == nil {
		return nil
	}
	// The metadata watcher and a FindCoordinator that created the topic both get here; a
	// partition loaded twice at once would have its first load superseded.
	b.txnLoadMu.Lock()
	defer b.txnLoadMu.Unlock()
	t, ok := b.meta.State().Topics[txn.StateTopic]
	if !ok {
		return nil
	}
	for _, p := range t.Partitions {
		part, local := b.partition(txn.StateTopic, p.ID)
		if !local || p.Leader != b.cfg.NodeID || !part.IsLeader() {
			if b.txns.IsLoaded(p.ID) {
				b.txns.Unload(p.ID)
			}
			continue
		}
		if b.txns.IsLoaded(p.ID) {
			continue
		}
		minISR := int(b.meta.State().TopicConfigInt(txn.StateTopic, "min.insync.replicas"))
		if err := b.txns.Load(ctx, p.ID, part.LeaderEpoch(), txnLog{part, minISR}); err != nil {
			return fmt.Errorf("load transactions of %s-%d: %w", txn.StateTopic, p.ID, err)
		}
	}
	return nil
}

// txnLog adapts a local __transaction_state replica. A state record is written acks=all
// with the topic's min.insync.replicas (transaction.state.log.min.isr), as Kafka's
// TransactionStateManager appends it, and a failed write is answered with Kafka's error,
// which the coordinator turns into what its client gets.
type txnLog struct {
	p      *partition.Partition
	minISR int
}

// A coordinator loads its partition to the log end, not the high watermark, as Kafka's
// do (FetchIsolation.LOG_END): a new leader's high watermark can lag what the old leader
// committed, so a load to it would miss committed state — a transaction's last added
// partitions, whose markers would then never be written.
func (l txnLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	return l.p.Log().ReadBytes(offset, maxBytes, l.p.Log().LogEndOffset(), true)
}

func (l txnLog) LogStartOffset() int64 { return l.p.Log().LogStartOffset() }
func (l txnLog) LogEndOffset() int64   { return l.p.Log().LogEndOffset() }

func (l txnLog) Append(ctx context.Context, batch []byte) (int64, error) {
	res, err := l.p.Append(batch, false, true, l.minISR)
	if err == nil {
		err = l.p.WaitCommitted(ctx, res.LastOffset+1, true, l.minISR)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", kerr.ErrorForCode(errorCode(err)), err)
	}
	return res.BaseOffset, nil
}

// handleTxn relays a transaction API request to the coordinator.
func (b *Broker) handleTxn(ctx context.Context, req kmsg.Request) kafka.Response {
	if b.txns == nil {
		return kafka.CloseConnection
	}
	resp, wait := b.txns.Handle(ctx, req)
	if wait != nil {
		return pendingTxn(wait)
	}
	if resp == nil {
		return kafka.CloseConnection
	}
	return resp
}

type pendingTxn func(context.Context) kmsg.Response

func (p pendingTxn) Wait(ctx context.Context) kafka.Response { return p(ctx) }

// txnCoordinatorFor finds the node coordinating transactionalID: the leader of its
// __transaction_state partition.
func (b *Broker) txnCoordinatorFor(transactionalID string) (partitionID, node int32, err error) {
	s := b.meta.State()
	t, ok := s.Topics[txn.StateTopic]
	if !ok {
		return 0, -1, kerr.CoordinatorNotAvailable
	}
	partitionID = txn.PartitionFor(transactionalID, int32(len(t.Partitions)))
	leader := t.Partitions[partitionID].Leader
	br, live := s.Brokers[leader]
	if leader < 0 || !live || br.Fenced {
		return partitionID, -1, kerr.CoordinatorNotAvailable
	}
	return partitionID, leader, nil
}

// txnMarkers sends a transaction's markers to the leaders of its partitions, one
// WriteTxnMarkers request per leader, in parallel.
type txnMarkers struct{ b *Broker }

func (m txnMarkers) WriteMarkers(ctx context.Context, mk txn.Marker) map[txn.TopicPartition]error {
	b := m.b
	out := make(map[txn.TopicPartition]error, len(mk.Partitions))
	s := b.meta.State()
	byLeader := map[int32][]txn.TopicPartition{}
	for _, tp := range mk.Partitions {
		t, ok := s.Topics[tp.Topic]
		switch {
		case !ok || tp.Partition < 0 || int(tp.Partition) >= len(t.Partitions):
			out[tp] = kerr.UnknownTopicOrPartition
		case t.Partitions[tp.Partition].Leader < 0:
			out[tp] = kerr.LeaderNotAvailable
		default:
			leader := t.Partitions[tp.Partition].Leader
			byLeader[leader] = append(byLeader[leader], tp)
		}
	}
	type answer struct {
		parts []txn.TopicPartition
		errs  map[txn.TopicPartition]error
	}
	answers := make(chan answer, len(byLeader))
	for leader, parts := range byLeader {
		go func() { answers <- answer{parts, b.sendMarkers(ctx, leader, mk, parts)} }()
	}
	for range byLeader {
		a := <-answers
		for _, tp := range a.parts {
			out[tp] = a.errs[tp]
		}
	}
	return out
}

// sendMarkers sends one WriteTxnMarkers request to leader and returns each partition's
// error. A request that fails as a whole (the leader unreachable) fails every partition
// with a retriable error: the coordinator tries again.
func (b *Broker) sendMarkers(ctx context.Context, leader int32, mk txn.Marker, parts []txn.TopicPartition) map[txn.TopicPartition]error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = mk.ProducerID, mk.ProducerEpoch, mk.Commit, mk.CoordinatorEpoch
	idx := map[string]int{}
	for _, tp := range parts {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(m.Topics)
			idx[tp.Topic] = i
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = tp.Topic
			m.Topics = append(m.Topics, t)
		}
		m.Topics[i].Partitions = append(m.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
	errs := make(map[txn.TopicPartition]error, len(parts))
	fail := func(err error) map[txn.TopicPartition]error {
		for _, tp := range parts {
			errs[tp] = err
		}
		return errs
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := b.txnClient.Broker(int(leader)).Request(rctx, req)
	if err != nil {
		b.log.Debug("sending transaction markers", "leader", leader, "producer_id", mk.ProducerID, "err", err)
		return fail(kerr.NetworkException)
	}
	resp := raw.(*kmsg.WriteTxnMarkersResponse)
	if len(resp.Markers) != 1 {
		return fail(kerr.UnknownServerError)
	}
	for _, t := range resp.Markers[0].Topics {
		for _, p := range t.Partitions {
			errs[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = kerr.ErrorForCode(p.ErrorCode)
		}
	}
	for _, tp := range parts {
		if _, ok := errs[tp]; !ok {
			errs[tp] = kerr.UnknownServerError // the leader did not answer for it
		}
	}
	return errs
}

// txnVerifier asks a transactional id's coordinator whether a partition is in its
// producer's ongoing transaction, before the partition's first batch of that transaction
// is appended (KIP-890 part 1): a produce that arrives after its transaction ended (a
// delayed or retried request of a zombie) must not open a transaction nobody will end.
type txnVerifier struct{ b *Broker }

func (v txnVerifier) VerifyPartition(ctx context.Context, transactionalID string, producerID int64, epoch int16, topic string, partition int32) error {
	b := v.b
	_, coordinator, err := b.txnCoordinatorFor(transactionalID)
	if err != nil {
		return verifyError(err)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = transactionalID, producerID, epoch, true
	tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	tt.Topic, tt.Partitions = topic, []int32{partition}
	tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{tt}
	req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tx}

	var resp kmsg.Response
	if coordinator == b.cfg.NodeID {
		r, wait := b.txns.Handle(ctx, req)
		if wait != nil {
			r = wait(ctx)
		}
		resp = r
	} else {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := b.txnClient.Broker(int(coordinator)).Request(rctx, req)
		if err != nil {
			b.log.Debug("verifying a transaction", "coordinator", coordinator, "transactional_id", transactionalID, "err", err)
			return verifyError(kerr.CoordinatorNotAvailable)
		}
		resp = r
	}
	ar, ok := resp.(*kmsg.AddPartitionsToTxnResponse)
	if !ok {
		return kerr.UnknownServerError
	}
	if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
		return verifyError(err)
	}
	for _, tr := range ar.Transactions {
		for _, t := range tr.Topics {
			for _, p := range t.Partitions {
				if t.Topic == topic && p.Partition == partition {
					return verifyError(kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
	}
	return kerr.UnknownServerError
}

// verifyError is what a produce is answered when verification failed with err. As Kafka's
// AddPartitionsToTxnManager does, a coordinator that cannot be reached or is moving becomes
// NOT_ENOUGH_REPLICAS, which every producer retries (it would take the coordinator errors
// as its own coordinator's and fail).
func verifyError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorLoadInProgress):
		return kerr.NotEnoughReplicas
	}
	return err
}
