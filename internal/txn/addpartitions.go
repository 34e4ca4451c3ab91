package txn

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// addRequest is one transaction of an AddPartitionsToTxn request: the single one of
// versions 0-3 (from a client) or one of the batch of v4+ (from a broker, KIP-890).
type addRequest struct {
	id         string
	pid        int64
	epoch      int16
	verifyOnly bool
	partitions []TopicPartition // in request order, without duplicates
	codes      map[TopicPartition]int16
}

func newAddRequest(id string, pid int64, epoch int16, verifyOnly bool) *addRequest {
	return &addRequest{id: id, pid: pid, epoch: epoch, verifyOnly: verifyOnly, codes: map[TopicPartition]int16{}}
}

func (a *addRequest) add(topic string, partitions []int32) {
	for _, p := range partitions {
		tp := TopicPartition{topic, p}
		if _, dup := a.codes[tp]; !dup {
			a.codes[tp] = 0
			a.partitions = append(a.partitions, tp)
		}
	}
}

// setAll answers every partition of the transaction with one code.
func (a *addRequest) setAll(code int16) {
	for _, tp := range a.partitions {
		a.codes[tp] = code
	}
}

// addPartitions answers AddPartitionsToTxn as Kafka's
// KafkaApis.handleAddPartitionsToTxnRequest and the coordinator's
// handleAddPartitionsToTransaction / handleVerifyPartitionsInTransaction do.
func (c *Coordinator) addPartitions(r *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	var txns []*addRequest
	if r.Version < 4 {
		a := newAddRequest(r.TransactionalID, r.ProducerID, r.ProducerEpoch, false)
		for _, t := range r.Topics {
			a.add(t.Topic, t.Partitions)
		}
		txns = append(txns, a)
	} else {
		for _, t := range r.Transactions {
			a := newAddRequest(t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly)
			for _, tt := range t.Topics {
				a.add(tt.Topic, tt.Partitions)
			}
			txns = append(txns, a)
		}
	}

	var writes []*addRequest
	for _, a := range txns {
		if len(a.partitions) == 0 {
			// Nothing to add and no partition to answer for. Kafka would still write an
			// Ongoing state with no partitions; a transaction with nothing in it is not
			// worth a write, nor a timeout abort later.
			continue
		}
		if !c.checkAddRequest(a) {
			continue // answered
		}
		if a.verifyOnly {
			c.verify(a)
			continue
		}
		writes = append(writes, a)
	}
	if len(writes) == 0 {
		return addPartitionsResponse(r, txns), nil
	}
	return c.async(func(ctx context.Context) kmsg.Response {
		for _, a := range writes {
			code, _, _, _ := c.transition(ctx, a.id, c.addPartitionsDecision(a.pid, a.epoch, a.partitions))
			a.setAll(fencedFor(code, r.Version, 2))
		}
		return addPartitionsResponse(r, txns)
	}, func() kmsg.Response {
		for _, a := range writes {
			a.setAll(codeNotAvailable)
		}
		return addPartitionsResponse(r, txns)
	})
}

// checkAddRequest answers the request-level failures of one transaction and reports
// whether it goes on: an empty transactional id is INVALID_REQUEST; partitions that do not
// exist are UNKNOWN_TOPIC_OR_PARTITION and then nothing is added, the others answering
// OPERATION_NOT_ATTEMPTED.
func (c *Coordinator) checkAddRequest(a *addRequest) bool {
	if a.id == "" {
		a.setAll(kerr.InvalidRequest.Code)
		return false
	}
	unknown := false
	for _, tp := range a.partitions {
		if !c.env.PartitionExists(tp.Topic, tp.Partition) {
			a.codes[tp] = kerr.UnknownTopicOrPartition.Code
			unknown = true
		}
	}
	if unknown {
		for _, tp := range a.partitions {
			if a.codes[tp] == 0 {
				a.codes[tp] = kerr.OperationNotAttempted.Code
			}
		}
		return false
	}
	return true
}

// verify answers a VerifyOnly transaction (KIP-890 part 1: a partition leader asks, before
// it appends a transactional batch, whether the partition is in the producer's ongoing
// transaction), as Kafka's handleVerifyPartitionsInTransaction: the id's errors for every
// partition, else NONE for partitions in the transaction and TRANSACTION_ABORTABLE for the
// others. A pending transition is not looked at: the partitions are those written.
func (c *Coordinator) verify(a *addRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, code := c.ownerLocked(a.id)
	if code == 0 {
		m := c.txns[a.id]
		code = checkProducer(m, a.pid, a.epoch)
		if code == 0 && m.state.prepared() {
			code = kerr.ConcurrentTransactions.Code
		}
		if code == 0 {
			for _, tp := range a.partitions {
				if _, ok := m.partitions[tp]; !ok {
					a.codes[tp] = kerr.TransactionAbortable.Code
				}
			}
			return
		}
	}
	a.setAll(code)
}

// addPartitionsResponse answers in the request's version: per topic for v0-v3, per
// transaction for v4+.
func addPartitionsResponse(r *kmsg.AddPartitionsToTxnRequest, txns []*addRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	type topicCodes struct {
		topic string
		parts []TopicPartition
	}
	byTopic := func(a *addRequest) []topicCodes {
		var out []topicCodes
		for _, tp := range a.partitions {
			i := slices.IndexFunc(out, func(t topicCodes) bool { return t.topic == tp.Topic })
			if i < 0 {
				out = append(out, topicCodes{topic: tp.Topic})
				i = len(out) - 1
			}
			out[i].parts = append(out[i].parts, tp)
		}
		return out
	}
	if r.Version < 4 {
		for _, a := range txns {
			for _, t := range byTopic(a) {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = t.topic
				for _, tp := range t.parts {
					rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
					rp.Partition, rp.ErrorCode = tp.Partition, a.codes[tp]
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
		}
		return resp
	}
	for _, a := range txns {
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = a.id
		for _, t := range byTopic(a) {
			rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			rt.Topic = t.topic
			for _, tp := range t.parts {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = tp.Partition, a.codes[tp]
				rt.Partitions = append(rt.Partitions, rp)
			}
			rtx.Topics = append(rtx.Topics, rt)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp
}
