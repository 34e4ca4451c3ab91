package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restoreChunk is how many changelog records one restore batch applies: big enough to
// amortize the batch commit, small enough to bound the memory a restore holds.
const restoreChunk = 4096

// restoreStore brings (store, partition) up to the end of its changelog's committed data
// (the last stable offset), reading only from the offset its checkpoint names, read_committed
// so that records of aborted transactions never reach the store. A checkpoint past that
// end means the local copy describes a history the changelog does not hold (the topic was
// recreated, or the store kept writes the changelog lost or never committed): it is wiped
// and rebuilt. It returns the number of records applied.
func restoreStore(ctx context.Context, cfg Config, db *stateDB, store string, partition int32) (int, error) {
	topic := ChangelogTopic(cfg.AppID, store)
	from, err := db.checkpoint(store, partition)
	if err != nil {
		return 0, err
	}
	base, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", topic, err)
	}
	defer base.Close()
	ends, err := kadm.NewClient(base).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("restore %s: end offsets: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || end.Err != nil {
		return 0, fmt.Errorf("restore %s partition %d: end offset: %v", topic, partition, end.Err)
	}
	if from > end.Offset {
		cfg.Logger.Warn("stream: changelog is behind the local store; rebuilding it", "topic", topic, "partition", partition, "checkpoint", from, "end", end.Offset)
		if err := db.wipe(store, partition); err != nil {
			return 0, fmt.Errorf("restore %s: wipe: %w", topic, err)
		}
		from = 0
	}
	if from >= end.Offset {
		return 0, nil
	}
	started := time.Now()
	// The restore ends at the last stable offset, and under exactly-once the record before it
	// is a transaction marker: kept control records tell the loop it got there (they are
	// not applied). Aborted records are dropped by the client, their markers kept.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}})}, cfg.ClientOpts...)...)
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", topic, err)
	}
	defer cl.Close()
	var (
		keys, values [][]byte
		next         = from
		records      int
		bytes        int64
	)
	for next < end.Offset {
		fetches := cl.PollRecords(ctx, restoreChunk)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var fetchErr error
		fetches.EachError(func(_ string, _ int32, e error) { fetchErr = e })
		if fetchErr != nil {
			return 0, fmt.Errorf("restore %s partition %d: %w", topic, partition, fetchErr)
		}
		keys, values = keys[:0], values[:0]
		before := next
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end.Offset {
				return // written after the restore began: the task's own processing covers it
			}
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			keys, values = append(keys, r.Key), append(values, r.Value)
			bytes += int64(len(r.Key) + len(r.Value))
		})
		if next > before {
			if err := db.applyRestored(store, partition, keys, values, next); err != nil {
				return 0, fmt.Errorf("restore %s partition %d: %w", topic, partition, err)
			}
			records += len(keys)
		}
	}
	cfg.Logger.Info("stream: restored", "topic", topic, "partition", partition, "from", from, "to", next,
		"records", records, "bytes", bytes, "took", time.Since(started))
	return records, nil
}
