package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// FinalTxnRead is the after-the-run read_committed read of topics into h.Final. It
// writes a plain sentinel record to every partition and reads each partition from its
// start until its sentinel, so it needs no guess of where a partition ends: its last
// offset may be a transaction marker, which no consumer returns, and the last stable
// offset says nothing of what a consumer will be handed. The sentinels are a reading aid,
// not part of the history: they are neither in h.Txns nor in h.Final.
func FinalTxnRead(ctx context.Context, h *TxnHistory, opts []kgo.Opt, topics ...string) error {
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	meta, err := kadm.NewClient(admCl).ListTopics(ctx, topics...)
	if err != nil {
		return err
	}
	producer, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer producer.Close()
	pending := map[TopicPartition]string{}
	offsets := map[string]map[int32]kgo.Offset{}
	for _, topic := range topics {
		td, ok := meta[topic]
		if !ok || td.Err != nil {
			return fmt.Errorf("final read: topic %s: %v", topic, td.Err)
		}
		offsets[topic] = map[int32]kgo.Offset{}
		for _, p := range td.Partitions.Sorted() {
			v := fmt.Sprintf("sentinel-%s-%d-%d", topic, p.Partition, time.Now().UnixNano())
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p.Partition, Value: []byte(v)}).FirstErr(); err != nil {
				return fmt.Errorf("final read: sentinel to %s/%d: %w", topic, p.Partition, err)
			}
			pending[TopicPartition{Topic: topic, Partition: p.Partition}] = v
			offsets[topic][p.Partition] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(offsets), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(pending) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("final read: %w (sentinels not reached: %v)", ctx.Err(), pending)
		}
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) { ferr = fmt.Errorf("final read of %s/%d: %w", topic, p, err) })
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
			sentinel, open := pending[tp]
			switch {
			case !open:
			case string(r.Value) == sentinel:
				delete(pending, tp)
			default:
				h.Final = append(h.Final, TxnRead{Isolation: ReadCommitted, Topic: r.Topic, Partition: r.Partition,
					Offset: r.Offset, Key: string(r.Key), Value: string(r.Value), At: time.Now()})
			}
		})
	}
	return nil
}

// DescribeBatches lists the record batches of topic's partition from offset from to to, as
// a raw read_uncommitted fetch returns them (control batches included), one line per
// batch with its producer, sequence and, for a marker, COMMIT or ABORT; then the aborted
// transactions a read_committed fetch of the same range reports. For the failure message
// of a transactional check.
func DescribeBatches(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64) ([]string, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []string
	for _, isolation := range []int8{0, 1} {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.IsolationLevel = 11, -1, 100, 16<<20, isolation
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = partition, from, 16<<20, -1
		rt.Partitions = []kmsg.FetchRequestTopicPartition{rp}
		req.Topics = []kmsg.FetchRequestTopic{rt}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return out, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return out, fmt.Errorf("fetch of %s/%d: no partition in the answer", topic, partition)
		}
		p := resp.Topics[0].Partitions[0]
		if isolation == 1 {
			out = append(out, fmt.Sprintf("read_committed: high watermark %d, last stable offset %d, aborted transactions %+v",
				p.HighWatermark, p.LastStableOffset, p.AbortedTransactions))
			break
		}
		for b := p.RecordBatches; len(b) > 0; {
			var batch kmsg.RecordBatch
			if err := batch.ReadFrom(b); err != nil {
				break
			}
			size := int(batch.Length) + 12
			if size > len(b) {
				break
			}
			raw := b[:size]
			b = b[size:]
			if batch.FirstOffset > to {
				break
			}
			kind := "data"
			if batch.Attributes&0x20 != 0 {
				kind = "control"
				// A marker's key is version (int16) and type (int16): 0 ABORT, 1 COMMIT.
				if recs, err := record.Records(raw); err == nil && len(recs) == 1 && len(recs[0].Key) >= 4 {
					kind = map[byte]string{0: "ABORT", 1: "COMMIT"}[recs[0].Key[3]]
				}
			}
			out = append(out, fmt.Sprintf("offsets %d-%d %s producer %d epoch %d seq %d txn %v",
				batch.FirstOffset, batch.FirstOffset+int64(batch.LastOffsetDelta), kind, batch.ProducerID, batch.ProducerEpoch,
				batch.FirstSequence, batch.Attributes&0x10 != 0))
		}
	}
	return out, nil
}
