package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
