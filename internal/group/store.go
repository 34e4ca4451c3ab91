package group

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// OffsetsTopic is the internal topic holding group metadata and committed offsets.
const OffsetsTopic = "__consumer_offsets"

// OffsetsLog is one __consumer_offsets partition as the coordinator needs it; the broker
// implements it over its local replica. Append returns once the batch is committed.
type OffsetsLog interface {
	Append(ctx context.Context, batch []byte) (lastOffset int64, err error)
	ReadBytes(offset, maxBytes int64) ([]byte, error) // whole batches from offset, up to the end
	LogStartOffset() int64
	LogEndOffset() int64
}

// TxnOffsetsLog is an OffsetsLog that writes a transaction's offsets the way the broker
// writes any transactional produce: after asking the transaction coordinator, for the
// first batch of the transaction in this partition, whether the partition is in it
// (KIP-890 part 1; the client added it with AddOffsetsToTxn). The coordinator uses it for
// TxnOffsetCommit when the log implements it.
type TxnOffsetsLog interface {
	AppendTransactional(ctx context.Context, batch []byte, transactionalID string) (lastOffset int64, err error)
}

// PartitionFor places a group on __consumer_offsets as Kafka does:
// abs(javaStringHashCode(groupID)) % partitions, with Kafka's abs (x & 0x7fffffff).
func PartitionFor(groupID string, partitions int32) int32 {
	var h int32
	for _, r := range utf16Units(groupID) {
		h = 31*h + int32(r)
	}
	return (h & 0x7fffffff) % partitions
}

// utf16Units are the UTF-16 code units Java hashes a string by.
func utf16Units(s string) []uint16 {
	var out []uint16
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xd800+(r>>10)), uint16(0xdc00+(r&0x3ff)))
			continue
		}
		out = append(out, uint16(r))
	}
	return out
}

// kv is one record of __consumer_offsets; a nil value is a tombstone.
type kv struct{ key, value []byte }

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: 1, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetValue(c committed) []byte {
	v := kmsg.OffsetCommitValue{Version: 3, Offset: c.offset, LeaderEpoch: c.leaderEpoch, Metadata: c.metadata, CommitTimestamp: c.timestamp}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: 2, Group: group}
	return k.AppendTo(nil)
}

// encodeBatch builds one uncompressed batch of records.
func encodeBatch(records []kv, now time.Time) ([]byte, error) {
	recs := make([]record.Record, len(records))
	for i, r := range records {
		recs[i] = record.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
	}
	return record.Build(record.Header{BaseTimestamp: now.UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
}

// replay reads a partition from its start and applies every record to the tables.
func (c *Coordinator) replay(ctx context.Context, partition int32, log OffsetsLog) error {
	offset := log.LogStartOffset()
	end := log.LogEndOffset()
	for offset < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := log.ReadBytes(offset, 4<<20)
		if err != nil {
			return fmt.Errorf("replay %s-%d at %d: %w", OffsetsTopic, partition, offset, err)
		}
		if len(b) == 0 {
			break
		}
		batches, err := record.Split(b)
		if err != nil {
			return fmt.Errorf("replay %s-%d at %d: %w", OffsetsTopic, partition, offset, err)
		}
		for _, batch := range batches {
			h, _ := record.ParseHeader(batch)
			offset = h.NextOffset()
			if h.IsControl() {
				// A transaction marker: the producer's offsets become visible or go, as
				// Kafka's GroupMetadataManager.doLoadGroupsAndOffsets applies them.
				if m, err := record.ParseEndTxnMarker(batch); err == nil && h.IsTransactional() {
					c.completeTxnLocked(partition, h.ProducerID, m.Commit)
				}
				continue
			}
			recs, err := record.Records(batch)
			if err != nil {
				return fmt.Errorf("replay %s-%d batch %d: %w", OffsetsTopic, partition, h.BaseOffset, err)
			}
			for _, r := range recs {
				at := h.BaseOffset + int64(r.OffsetDelta)
				if h.IsTransactional() {
					c.applyTxnRecord(partition, h.ProducerID, at, r.Key, r.Value)
					continue
				}
				c.applyRecord(partition, at, r.Key, r.Value)
			}
		}
	}
	return nil
}

// applyRecord applies one __consumer_offsets record, written at recordOffset, during
// replay. Unknown record kinds are skipped (a newer Kafka may write kinds we do not know).
func (c *Coordinator) applyRecord(partition int32, recordOffset int64, key, value []byte) {
	if len(key) < 2 {
		return
	}
	switch binary.BigEndian.Uint16(key) {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(key) != nil {
			return
		}
		g := c.groupLocked(k.Group, partition, true)
		tp := topicPartition{k.Topic, k.Partition}
		if value == nil {
			delete(g.offsets, tp)
			c.dropIfDeadLocked(g)
			return
		}
		var v kmsg.OffsetCommitValue
		if v.ReadFrom(value) != nil {
			return
		}
		g.offsets[tp] = committed{offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, timestamp: v.CommitTimestamp, recordOffset: recordOffset}
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		g := c.groupLocked(k.Group, partition, true)
		if value == nil {
			g.members, g.generation, g.protocol, g.leader, g.state = map[string]*member{}, 0, "", "", stateEmpty
			c.dropIfDeadLocked(g)
			return
		}
		var v kmsg.GroupMetadataValue
		if v.ReadFrom(value) != nil {
			return
		}
		g.restore(&v, c.cfg.Now())
	}
}
