package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/record"
)

// pendingAppend is one partition's append waiting to be committed.
type pendingAppend struct {
	part     *partition.Partition
	resp     *kmsg.ProduceResponseTopicPartition
	end      int64
	acksAll  bool
	minISR   int
	appended time.Time
	latency  *latencyMetrics
}

// handleProduce appends every partition's batches now, in request order, and answers
// once they are committed (fsynced under fsync=always, for acks=1 and acks=all alike:
// Strand acknowledges only durable writes, DESIGN D4). acks=0 gets no answer.
// received is when the request's frame began to arrive, the start of its latency spans.
func (b *Broker) handleProduce(ctx context.Context, req *kmsg.ProduceRequest, received time.Time) kafka.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.TransactionID == nil && hasTransactionalRecords(req) {
		// Kafka's KafkaApis.handleProduceRequest: transactional records need the
		// transactional id they are written for, and every partition gets the refusal.
		return refuseProduce(req, resp, kerr.TransactionalIDAuthorizationFailed.Code)
	}
	s := b.meta.State()
	var waits []pendingAppend
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti, t := range req.Topics {
		rt := &resp.Topics[ti]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		topic, known := s.Topics[t.Topic]
		maxBytes := s.TopicConfigInt(t.Topic, "max.message.bytes")
		minISR := int(s.TopicConfigInt(t.Topic, "min.insync.replicas"))
		logAppendTime := false
		if v, _, _ := s.TopicConfig(t.Topic, "message.timestamp.type"); v == "LogAppendTime" {
			logAppendTime = true
		}
		_, compacted := cleanupPolicy(s, t.Topic)
		rules := recordRules{topic: t.Topic, compacted: compacted, createTime: !logAppendTime,
			maxTimestampMs: s.TopicConfigInt(t.Topic, "message.timestamp.difference.max.ms")}
		for pi, p := range t.Partitions {
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
			part, local := b.partition(t.Topic, p.Partition)
			switch {
			case !known || p.Partition < 0 || int(p.Partition) >= len(topic.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case topic.Internal:
				rp.ErrorCode = kerr.InvalidTopicException.Code
				rp.ErrorMessage = kmsg.StringPtr("internal topics are written by the broker only")
			case local && b.isOffline(topicPartition{t.Topic, p.Partition}) && topic.Partitions[p.Partition].Leader == b.cfg.NodeID:
				err := b.storageRefusal(topicPartition{t.Topic, p.Partition})
				rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
			case !local || !part.IsLeader():
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
				b.fillCurrentLeader(rp, topic.Partitions[p.Partition])
			default:
				acksAll := req.Acks == -1
				rules.partition = p.Partition
				end, err := b.appendPartition(ctx, part, p.Records, req.TransactionID, maxBytes, logAppendTime, rules, acksAll, minISR, rp)
				b.noteStorageError(part, err)
				if err == nil && req.Acks != 0 {
					now := time.Now()
					b.metrics.latency.observeStage(stageAppend, now.Sub(received))
					waits = append(waits, pendingAppend{part: part, end: end, resp: rp, acksAll: acksAll, minISR: minISR,
						appended: now, latency: b.metrics.latency})
				}
			}
			if rp.ErrorCode != 0 {
				b.metrics.produceErr.WithLabelValues(strconv.Itoa(int(rp.ErrorCode))).Inc()
			}
		}
	}
	if req.Acks == 0 {
		return nil
	}
	if len(waits) == 0 {
		return resp
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return pendingProduce{resp: resp, waits: waits, timeout: timeout}
}

// hasTransactionalRecords reports whether any partition's first batch is transactional, as
// Kafka's ProduceRequest.hasTransactionalRecords looks at them (a client writes one batch
// per partition from version 3 on).
func hasTransactionalRecords(req *kmsg.ProduceRequest) bool {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if h, err := record.ParseHeader(p.Records); err == nil && h.IsTransactional() {
				return true
			}
		}
	}
	return false
}

// refuseProduce answers every partition of req with code.
func refuseProduce(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, code int16) kafka.Response {
	if req.Acks == 0 {
		return nil
	}
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// appendPartition validates and appends one partition's records, filling rp. It returns
// the end offset to wait for. As in Kafka, a compacted topic's records must have keys
// (the cleaner could only drop them) and timestamps may be bounded, which costs decoding
// the batches here; a refused record is named in rp's record_errors (validate.go).
// Transactional batches come with the request's transactionalID (handleProduce checked it
// is there); control batches are the coordinator's alone.
func (b *Broker) appendPartition(ctx context.Context, part *partition.Partition, records []byte, transactionalID *string, maxBytes int64, logAppendTime bool, rules recordRules, acksAll bool, minISR int, rp *kmsg.ProduceResponseTopicPartition) (int64, error) {
	prod, err := record.SplitProduced(records) // the one CRC pass: the journal writes prod as checked here
	var verification journal.Verification
	if err == nil {
		for i, batch := range prod.Batches {
			h := prod.Headers[i]
			switch {
			case int64(len(batch)) > maxBytes:
				rp.ErrorCode = kerr.MessageTooLarge.Code
				err = fmt.Errorf("batch of %d bytes exceeds max.message.bytes %d", len(batch), maxBytes)
			case h.IsControl():
				// Kafka's LogValidator refuses a client's control batch as an invalid record:
				// markers are written by the broker for the transaction coordinator.
				rp.ErrorCode = kerr.InvalidRecord.Code
				err = fmt.Errorf("clients may not write control batches")
			case h.IsTransactional() && transactionalID == nil:
				rp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				err = fmt.Errorf("transactional batch without a transactional id")
			case rules.needsRecords(h):
				if err = validateRecords(batch, h, rules, time.Now(), rp); err != nil {
					return 0, err
				}
			}
			if err != nil {
				rp.ErrorMessage = errorMessage(err)
				return 0, err
			}
		}
	}
	if err == nil {
		for _, h := range prod.Headers {
			if h.IsTransactional() { // the loop above saw transactionalID for it
				verification, err = b.verifyTransaction(ctx, part, *transactionalID, h)
				break
			}
		}
	}
	var res journal.AppendResult
	if err == nil {
		res, err = part.AppendProduced(prod, logAppendTime, acksAll, minISR, verification)
	}
	if err != nil {
		rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
		return 0, err
	}
	rp.BaseOffset, rp.LogStartOffset = res.BaseOffset, res.LogStartOffset
	if logAppendTime && !res.Duplicate {
		rp.LogAppendTime = res.LogAppendTime
	}
	if !res.Duplicate {
		b.metrics.bytesIn.WithLabelValues(part.Topic).Add(float64(len(records)))
		b.metrics.recordsIn.WithLabelValues(part.Topic).Add(float64(res.Records))
	}
	return res.LastOffset + 1, nil
}

// verifyTransaction asks the transaction coordinator, before the first batch of a
// transaction in this partition, whether the partition is in the producer's ongoing
// transaction (KIP-890 part 1, TxnVerifier). A producer whose transaction is already open
// here needs no asking: Kafka's ReplicaManager.appendRecords verifies only when the
// producer state has no ongoing transaction. The guard taken before asking goes with the
// append, which the journal refuses if the transaction ended meanwhile.
func (b *Broker) verifyTransaction(ctx context.Context, part *partition.Partition, transactionalID string, h record.Header) (journal.Verification, error) {
	if b.txnVerifier == nil {
		return journal.Verification{}, nil
	}
	v := journal.Verification{Required: true}
	if part.Log().HasOpenTransaction(h.ProducerID) {
		return v, nil // a marker before the append leaves no guard to match: refused there
	}
	v.Guard = part.Log().StartVerification(h.ProducerID)
	if err := b.txnVerifier.VerifyPartition(ctx, transactionalID, h.ProducerID, h.ProducerEpoch, part.Topic, part.ID); err != nil {
		return v, fmt.Errorf("transaction %q of producer %d epoch %d does not hold %s-%d: %w", transactionalID, h.ProducerID, h.ProducerEpoch, part.Topic, part.ID, err)
	}
	return v, nil
}

// ReleasesFrame implements kafka.FrameReleaser: handleProduce appends the request's record
// bytes to the journal before it returns, and its answer refers to none of them, so a
// Produce request's buffer can take the connection's next request.
func (b *Broker) ReleasesFrame(key int16) bool { return key == int16(kmsg.Produce) }

type pendingProduce struct {
	resp    *kmsg.ProduceResponse
	waits   []pendingAppend
	timeout time.Duration
}

// Wait blocks until every partition's append is committed or the request times out.
// The partitions' group commits are started together, not one after another: a request
// that touches six partitions waits for one round of overlapping fsyncs (which the
// filesystem's journal can merge), not for six in a row.
func (p pendingProduce) Wait(ctx context.Context) kafka.Response {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	if len(p.waits) == 1 {
		p.waits[0].wait(ctx)
		return p.resp
	}
	var wg sync.WaitGroup
	for i := 1; i < len(p.waits); i++ {
		wg.Add(1)
		go func(w *pendingAppend) {
			defer wg.Done()
			w.wait(ctx)
		}(&p.waits[i])
	}
	p.waits[0].wait(ctx)
	wg.Wait()
	return p.resp
}

// fillCurrentLeader tells a producer that reached a non-leader where the leader is
// (KIP-951, Produce v10+), saving it a metadata round trip.
func (b *Broker) fillCurrentLeader(rp *kmsg.ProduceResponseTopicPartition, meta cluster.Partition) {
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = meta.Leader, meta.LeaderEpoch
}

// wait waits for the append's commit, timing its fsync and replication spans, and
// records a failure in its partition's answer.
func (w *pendingAppend) wait(ctx context.Context) {
	err := w.part.Log().WaitDurable(ctx, w.end)
	if err == nil {
		durable := time.Now()
		w.latency.observeStage(stageFsync, durable.Sub(w.appended))
		if err = w.part.WaitCommitted(ctx, w.end, w.acksAll, w.minISR); err == nil && w.acksAll {
			w.latency.observeStage(stageReplicate, time.Since(durable))
		}
	}
	if err != nil && w.resp != nil {
		w.resp.ErrorCode, w.resp.ErrorMessage = errorCode(err), errorMessage(err)
		w.resp.BaseOffset = -1
	}
}

// producerIDBlock is how many producer ids one metadata commit reserves.
const producerIDBlock = 1000

// handleInitProducerID gives an idempotent producer a fresh id from a block reserved in
// the metadata log; a transactional producer's request goes to its transaction
// coordinator (txn.go).
func (b *Broker) handleInitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kafka.Response {
	if req.TransactionalID != nil {
		return b.handleTxn(ctx, req)
	}
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	id, err := b.allocateProducerID(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// allocateProducerID hands out the next producer id of the block this node reserved in the
// metadata log, reserving a new block when it is used up.
func (b *Broker) allocateProducerID(ctx context.Context) (int64, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext >= b.pidEnd {
		first, err := b.meta.AllocateProducerIDs(ctx, producerIDBlock)
		if err != nil {
			reason := producerIDReason(err)
			b.metrics.producerIDErr.WithLabelValues(reason).Inc()
			b.log.Debug("no producer id block", "reason", reason, "err", err)
			return -1, err
		}
		b.pidNext, b.pidEnd = first, first+producerIDBlock
	}
	id := b.pidNext
	b.pidNext++
	return id, nil
}

// producerIDReason names why a producer-id block could not be reserved, for the
// strand_producer_id_errors_total metric. Whatever the reason, the producer is answered as
// Kafka's RPCProducerIdManager.generateProducerId answers when it has no block:
// COORDINATOR_LOAD_IN_PROGRESS, which every client retries (Kafka chose it over
// REQUEST_TIMED_OUT because older clients take that one as fatal; NOT_CONTROLLER and
// KAFKA_STORAGE_ERROR are not answers a producer expects from InitProducerId). Why it failed
// is logged once, on the change, by the metadata store, and shown by
// strand_metadata_store_writable.
func producerIDReason(err error) string {
	switch {
	case errors.Is(err, cluster.ErrMetadataStorage):
		return "metadata_storage"
	case errors.Is(err, cluster.ErrNotController):
		return "no_metadata_leader"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return "other"
}
