package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/record"
)

// These tests write transactional batches and markers straight into the partition's
// journal, so the read side is tested apart from the producer and the coordinator
// (txnmarkers_test.go and test/compat drive the whole path).

const attrTransactional = 0x10

// txnRecords is a batch of producer pid's transaction (pid -1: not transactional) holding
// one record per value.
func txnRecords(t testing.TB, pid int64, seq int32, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	h := record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if pid >= 0 {
		h.Attributes, h.ProducerID, h.ProducerEpoch, h.BaseSequence = attrTransactional, pid, 0, seq
	}
	b, err := record.Build(h, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func txnMarker(pid int64, commit bool) []byte {
	return record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, time.Now().UnixMilli(), 0)
}

// appendLocal appends batch to partition 0 of topic as its leader would, and returns its
// base offset.
func appendLocal(t testing.TB, b *Broker, topic string, batch []byte) int64 {
	t.Helper()
	part, ok := b.partition(topic, 0)
	if !ok {
		t.Fatalf("no local partition %s-0", topic)
	}
	res, err := part.Log().Append(testContext(t), batch, journal.AppendOptions{LeaderEpoch: part.LeaderEpoch()})
	if err != nil {
		t.Fatal(err)
	}
	return res.BaseOffset
}

// heldTransaction starts a broker with topic whose partition 0 holds producer pid's open
// transaction of two records, "t0" and "t1" at offsets 0-1, below a high watermark (2) held
// where it is by an in-sync follower that never fetches: a marker then moves the LSO alone.
func heldTransaction(t *testing.T, topic string, pid int64) (*Broker, *kgo.Client, *partition.Partition) {
	t.Helper()
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, topic, 1, nil)
	appendLocal(t, b, topic, txnRecords(t, pid, 0, "t0", "t1"))
	part, _ := b.partition(topic, 0)
	if hw, lso := part.HighWatermark(), part.LastStableOffset(); hw != 2 || lso != 0 {
		t.Fatalf("high watermark %d, LSO %d; want 2 and 0", hw, lso)
	}
	isr, partitionEpoch := part.ISR()
	part.BecomeLeader(part.LeaderEpoch(), partitionEpoch, append(isr, 99), append(isr, 99), time.Now())
	return b, cl, part
}

// fetched is what one partition's fetch answer says, with the batches decoded.
type fetched struct {
	highWatermark, lastStable int64
	aborted                   []abortedTxn // nil when the answer has a null list
	next                      int64        // offset after the last batch, -1 with none
	values                    []string     // data records, in order
}

type abortedTxn struct{ producerID, firstOffset int64 }

func fetchOnce(t testing.TB, cl *kgo.Client, topic string, offset int64, isolation int8) fetched {
	t.Helper()
	resp := request[*kmsg.FetchResponse](t, cl, fetchRequest(topic, offset, isolation, 0))
	return decodeFetched(t, resp)
}

func decodeFetched(t testing.TB, resp *kmsg.FetchResponse) fetched {
	t.Helper()
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch: error code %d", p.ErrorCode)
	}
	f := fetched{highWatermark: p.HighWatermark, lastStable: p.LastStableOffset, next: -1}
	for _, a := range p.AbortedTransactions {
		f.aborted = append(f.aborted, abortedTxn{a.ProducerID, a.FirstOffset})
	}
	parts, err := record.Split(p.RecordBatches)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range parts {
		h, err := record.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		f.next = h.NextOffset()
		if h.IsControl() {
			continue
		}
		recs, err := record.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			f.values = append(f.values, string(r.Value))
		}
	}
	return f
}

// TestReadCommittedStopsAtLastStableOffset: an open transaction holds read_committed
// fetches and ListOffsets LATEST at its first offset, read_uncommitted reads past it and
// is told the LSO, and the markers release it; an aborted transaction comes with the
// fetch so that the client can drop its records.
func TestReadCommittedStopsAtLastStableOffset(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "rc", 1, nil)
	appendLocal(t, b, "rc", txnRecords(t, -1, 0, "p0", "p1"))                 // 0-1
	first := appendLocal(t, b, "rc", txnRecords(t, 100, 0, "c0", "c1", "c2")) // 2-4
	appendLocal(t, b, "rc", txnRecords(t, -1, 0, "p2"))                       // 5

	committed := fetchOnce(t, cl, "rc", 0, 1)
	if committed.highWatermark != 6 || committed.lastStable != first || committed.next != first ||
		!slices.Equal(committed.values, []string{"p0", "p1"}) || committed.aborted != nil {
		t.Fatalf("read_committed with a transaction open from %d: %+v", first, committed)
	}
	if got := fetchOnce(t, cl, "rc", first, 1); got.next != -1 || got.lastStable != first {
		t.Fatalf("read_committed at the LSO: %+v, want nothing", got)
	}
	uncommitted := fetchOnce(t, cl, "rc", 0, 0)
	if uncommitted.lastStable != first || uncommitted.next != 6 || len(uncommitted.values) != 6 || uncommitted.aborted != nil {
		t.Fatalf("read_uncommitted: %+v, want all 6 records and the LSO %d", uncommitted, first)
	}
	if lso, hw := listOffset(t, cl, "rc", -1, 1), listOffset(t, cl, "rc", -1, 0); lso != first || hw != 6 {
		t.Fatalf("ListOffsets LATEST: read_committed %d, read_uncommitted %d; want %d and 6", lso, hw, first)
	}

	appendLocal(t, b, "rc", txnMarker(100, true)) // 6
	committed = fetchOnce(t, cl, "rc", 0, 1)
	if committed.lastStable != 7 || committed.next != 7 || !slices.Equal(committed.values, []string{"p0", "p1", "c0", "c1", "c2", "p2"}) {
		t.Fatalf("read_committed after COMMIT: %+v", committed)
	}
	if lso := listOffset(t, cl, "rc", -1, 1); lso != 7 {
		t.Fatalf("ListOffsets LATEST read_committed after COMMIT: %d, want 7", lso)
	}

	aborted := appendLocal(t, b, "rc", txnRecords(t, 200, 0, "a0", "a1")) // 7-8
	appendLocal(t, b, "rc", txnRecords(t, -1, 0, "p3"))                   // 9
	if got := fetchOnce(t, cl, "rc", 7, 1); got.next != -1 || got.lastStable != aborted {
		t.Fatalf("read_committed with producer 200's transaction open: %+v", got)
	}
	appendLocal(t, b, "rc", txnMarker(200, false))       // 10
	appendLocal(t, b, "rc", txnRecords(t, 100, 3, "c3")) // 11
	appendLocal(t, b, "rc", txnMarker(100, true))        // 12
	want := []abortedTxn{{200, aborted}}
	for _, from := range []int64{0, aborted, 10} {
		got := fetchOnce(t, cl, "rc", from, 1)
		if got.lastStable != 13 || got.next != 13 || !slices.Equal(got.aborted, want) {
			t.Fatalf("read_committed from %d after ABORT: %+v, want aborted %+v", from, got, want)
		}
	}
	if got := fetchOnce(t, cl, "rc", 11, 1); got.aborted != nil {
		t.Fatalf("read_committed from 11, past the abort marker: aborted %+v, want none", got.aborted)
	}
	if got := fetchOnce(t, cl, "rc", 0, 0); got.aborted != nil || len(got.values) != 10 {
		t.Fatalf("read_uncommitted after ABORT: %+v, want every data record and no aborted list", got)
	}

	// A real client drops the aborted records, and never returns control records.
	for _, c := range []struct {
		isolation kgo.IsolationLevel
		want      []string
	}{
		{kgo.ReadCommitted(), []string{"p0", "p1", "c0", "c1", "c2", "p2", "p3", "c3"}},
		{kgo.ReadUncommitted(), []string{"p0", "p1", "c0", "c1", "c2", "p2", "a0", "a1", "p3", "c3"}},
	} {
		consumer := client(t, b, kgo.ConsumeTopics("rc"), kgo.FetchIsolationLevel(c.isolation),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var got []string
		ctx := testContext(t)
		for len(got) < len(c.want) && ctx.Err() == nil {
			fs := consumer.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("kgo consumer at %v: %q, want %q", c.isolation, got, c.want)
		}
	}
}

// TestReadCommittedLongPollWakesOnMarker: a marker moves the LSO without moving the high
// watermark when the transaction's records are already below it; a parked read_committed
// fetch must wake then, not at max_wait.
func TestReadCommittedLongPollWakesOnMarker(t *testing.T) {
	b, _, part := heldTransaction(t, "rcpoll", 300)
	resp := longPoll(t, b, fetchRequest("rcpoll", 0, 1, 20000), func() {
		appendLocal(t, b, "rcpoll", txnMarker(300, true)) // 2
		if hw := part.HighWatermark(); hw != 2 {
			t.Fatalf("high watermark %d moved with the marker; the test needs it held at 2", hw)
		}
	})
	got := decodeFetched(t, resp)
	if got.lastStable != 2 || !slices.Equal(got.values, []string{"t0", "t1"}) {
		t.Fatalf("woken fetch: %+v, want t0 t1 below the LSO 2", got)
	}
}

// TestFetchSessionReportsLastStableOffset: an incremental fetch answers a partition whose
// LSO moved, even with no records and the same high watermark, as Kafka does.
func TestFetchSessionReportsLastStableOffset(t *testing.T) {
	b, cl, _ := heldTransaction(t, "rcsess", 400)
	open := sessionFetch(0, 0, "rcsess", 0)
	open.Topics[0].Partitions[0].FetchOffset = 2 // at the high watermark: nothing to read
	full := request[*kmsg.FetchResponse](t, cl, open)
	if full.ErrorCode != 0 || full.SessionID == 0 || full.Topics[0].Partitions[0].LastStableOffset != 0 {
		t.Fatalf("full fetch: %+v, want the LSO 0", full)
	}
	appendLocal(t, b, "rcsess", txnMarker(400, true)) // 2
	inc := request[*kmsg.FetchResponse](t, cl, sessionFetch(full.SessionID, 1, "rcsess"))
	if len(inc.Topics) != 1 || len(inc.Topics[0].Partitions) != 1 {
		t.Fatalf("incremental fetch after the marker moved the LSO: %+v, want the partition", inc)
	}
	if p := inc.Topics[0].Partitions[0]; p.HighWatermark != 2 || p.LastStableOffset != 2 {
		t.Fatalf("incremental answer: high watermark %d, LSO %d; want both 2", p.HighWatermark, p.LastStableOffset)
	}
}
