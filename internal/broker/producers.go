package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/record"
)

// TxnVerifier asks the transaction coordinator whether topic/partition is in the ongoing
// transaction of transactionalID's producer (producerID, epoch) — KIP-890 part 1. It
// returns nil or a kerr error to answer the produce with.
//
// The broker asks only before the first transactional batch of a transaction in a
// partition, as Kafka's ReplicaManager.appendRecords does through its
// AddPartitionsToTxnManager: a late produce of a transaction that has already ended (the
// hanging transaction of KAFKA-14402) would otherwise open a transaction no marker ever
// closes, and hold the partition's last stable offset forever.
type TxnVerifier interface {
	VerifyPartition(ctx context.Context, transactionalID string, producerID int64, epoch int16, topic string, partition int32) error
}

// AppendTransactional implements group.TxnOffsetsLog: a TxnOffsetCommit's batch is
// verified with the transaction coordinator as a transactional produce is (Kafka's
// GroupCoordinator.handleTxnCommitOffsets starts the same verification of the offsets
// partition), then written acks=all as the coordinator writes all group state.
func (o offsetsLog) AppendTransactional(ctx context.Context, batch []byte, transactionalID string) (int64, error) {
	prod, err := record.SplitProduced(batch)
	if err != nil {
		return 0, err
	}
	if len(prod.Headers) != 1 {
		return 0, fmt.Errorf("%w: a transaction's offsets are one batch, got %d", journal.ErrCorrupt, len(prod.Headers))
	}
	wrap := func(err error) error { return fmt.Errorf("%w (%w)", err, kerr.ErrorForCode(errorCode(err))) }
	verification, err := o.b.verifyTransaction(ctx, o.p, transactionalID, prod.Headers[0])
	if err != nil {
		return 0, wrap(err)
	}
	res, err := o.p.AppendProduced(prod, false, true, 1, verification)
	if err != nil {
		return 0, wrap(err)
	}
	return res.LastOffset, o.p.WaitCommitted(ctx, res.LastOffset+1, true, 1)
}

// handleDescribeProducers answers DescribeProducers (KIP-664) from the leaders' journals:
// for each partition, the producers whose state the log keeps, as Kafka's
// ReplicaManager.activeProducerState reads them from the ProducerStateManager.
func (b *Broker) handleDescribeProducers(req *kmsg.DescribeProducersRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	s := b.meta.State()
	for _, t := range req.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		topic, known := s.Topics[t.Topic]
		for _, id := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = id
			part, local := b.partition(t.Topic, id)
			switch {
			case !known || id < 0 || int(id) >= len(topic.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !local || !part.IsLeader():
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				for _, p := range part.Log().Producers() {
					ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
					ap.ProducerID, ap.ProducerEpoch, ap.LastSequence = p.ProducerID, int32(p.Epoch), p.LastSequence
					ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = p.LastTimestamp, p.CoordinatorEpoch, p.TxnStartOffset
					rp.ActiveProducers = append(rp.ActiveProducers, ap)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// producerExpirationCheck is Kafka's producer.id.expiration.check.interval.ms default: how
// often every log forgets its producers idle past producer.id.expiration.ms.
const producerExpirationCheck = 10 * time.Minute

// runProducerExpiry expires idle producers in every local log, as Kafka's LogManager
// schedules UnifiedLog.removeExpiredProducers; a producer with an open transaction stays.
func (b *Broker) runProducerExpiry(ctx context.Context) {
	defer b.bg.Done()
	everyTick(ctx, producerExpirationCheck, func() {
		for _, p := range b.localPartitions() {
			if n := p.Log().ExpireProducers(); n > 0 {
				b.log.Debug("expired idle producers", "topic", p.Topic, "partition", p.ID, "count", n)
			}
		}
	})
}
