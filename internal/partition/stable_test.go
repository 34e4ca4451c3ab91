package partition

import (
	"context"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

const attrTransactional = 0x10

// txnBatch is a batch of n records of producer pid's transaction, from sequence seq.
func txnBatch(t *testing.T, pid int64, seq int32, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte("v")}
	}
	b, err := record.Build(record.Header{Attributes: attrTransactional, ProducerID: pid, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendDurable(t *testing.T, p *Partition, b []byte) journal.AppendResult {
	t.Helper()
	res, err := p.Log().Append(context.Background(), b, journal.AppendOptions{LeaderEpoch: p.LeaderEpoch()})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLastStableOffset: the LSO is the high watermark with no open transaction, the first
// offset of the oldest open one otherwise, and a marker moves it on.
func TestLastStableOffset(t *testing.T) {
	p := openTest(t, 1)
	p.BecomeLeader(1, 1, []int32{1, 2}, []int32{1, 2}, time.Unix(1700000000, 0))
	appendDurable(t, p, batch(t, 2))                   // 0-1
	first := appendDurable(t, p, txnBatch(t, 7, 0, 3)) // 2-4
	appendDurable(t, p, batch(t, 1))                   // 5
	if _, err := p.FollowerFetched(2, 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 1 || lso != 1 {
		t.Fatalf("high watermark %d, LSO %d; want both 1: the LSO never passes the high watermark", hw, lso)
	}
	if _, err := p.FollowerFetched(2, 6, time.Now()); err != nil {
		t.Fatal(err)
	}
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 6 || lso != first.BaseOffset {
		t.Fatalf("high watermark %d, LSO %d; want 6 and the open transaction's first offset %d", hw, lso, first.BaseOffset)
	}
	appendDurable(t, p, record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: 7, Commit: true}, 1, 1)) // 6
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 6 || lso != 6 {
		t.Fatalf("after the COMMIT marker: high watermark %d, LSO %d; want both 6", hw, lso)
	}
	if _, err := p.FollowerFetched(2, 7, time.Now()); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 7 {
		t.Fatalf("LSO %d once the marker is replicated, want 7", lso)
	}
}
