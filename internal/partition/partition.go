// Package partition owns one local replica of a partition: its journal, its leader epoch
// and its high watermark, the offset below which records are committed and visible to
// consumers. A single node leads every partition it hosts; replication (followers, ISR,
// a high watermark that is the minimum over the ISR) extends this type without changing
// its callers.
//
// It never speaks the wire protocol and never decides leadership: the cluster metadata does.
package partition

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/strand-data/strand/internal/journal"
)

// Partition is one local replica.
type Partition struct {
	Topic string
	ID    int32
	log   *journal.Log
	fsync journal.FsyncPolicy
	epoch atomic.Int32
}

// Open opens (or creates) the replica's log in dir.
func Open(topic string, id int32, dir string, cfg journal.Config, leaderEpoch int32) (*Partition, error) {
	l, err := journal.Open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, id, err)
	}
	p := &Partition{Topic: topic, ID: id, log: l, fsync: cfg.Fsync}
	p.epoch.Store(leaderEpoch)
	return p, nil
}

// Dir is the name of a partition's directory under the data dir, as Kafka names it.
func Dir(topic string, id int32) string { return topic + "-" + strconv.Itoa(int(id)) }

// Log is the replica's journal.
func (p *Partition) Log() *journal.Log { return p.log }

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.epoch.Load() }

// SetLeaderEpoch records a leader change from the metadata.
func (p *Partition) SetLeaderEpoch(e int32) { p.epoch.Store(e) }

// HighWatermark is the end of what consumers may read. On a single node a record is
// committed once it is durable: under fsync=always that is after its fsync, so no consumer
// ever reads a record that a crash could take back.
func (p *Partition) HighWatermark() int64 { return p.log.DurableOffset() }

// Append appends a producer's batches as leader and returns without waiting for
// durability; follow with WaitCommitted.
func (p *Partition) Append(batches []byte, logAppendTime bool) (journal.AppendResult, error) {
	return p.log.AppendNoWait(batches, journal.AppendOptions{LeaderEpoch: p.epoch.Load(), LogAppendTime: logAppendTime})
}

// WaitCommitted returns once every offset below end is committed (below the high watermark).
func (p *Partition) WaitCommitted(ctx context.Context, end int64) error {
	return p.log.WaitDurable(ctx, end)
}

// Close closes the replica's log.
func (p *Partition) Close() error { return p.log.Close() }
