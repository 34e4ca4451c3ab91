package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

func fastMaintenance(c *Config) {
	c.RetentionCheckInterval, c.CleanerBackoff = 50*time.Millisecond, 50*time.Millisecond
}

// closedRecords counts the records and tombstones in a log's closed segments.
func closedRecords(t *testing.T, l *journal.Log) (records, tombstones int) {
	t.Helper()
	segs := l.Segments()
	active := segs[len(segs)-1].BaseOffset
	if active <= l.LogStartOffset() {
		return 0, 0
	}
	b, err := l.ReadBytes(l.LogStartOffset(), 1<<40, active, true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		recs, err := record.Records(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			records++
			if r.Value == nil {
				tombstones++
			}
		}
	}
	return records, tombstones
}

// waitFor polls cond (the broker's background cleaner runs every 50 ms) for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCompactedTopicEndToEnd produces updates and deletes to a compacted topic with
// franz-go, lets the broker's cleaner compact it, and consumes from the beginning with
// franz-go: the consumer rebuilds the producer's table from at most one record per key
// (plus the active segment), tombstones gone after delete.retention.ms.
func TestCompactedTopicEndToEnd(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), fastMaintenance)
	cl := client(t, b, kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.ProducerBatchMaxBytes(4096))
	createTopic(t, cl, "table", 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "16384",
		"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "300"})
	const updates, keys = 20000, 200
	rng := rand.New(rand.NewPCG(7, 8))
	want := map[string]string{}
	ctx := testContext(t)
	for i := 0; i < updates; i++ {
		k := fmt.Sprintf("user-%03d", rng.IntN(keys))
		r := &kgo.Record{Topic: "table", Key: []byte(k)}
		if rng.IntN(10) == 0 {
			delete(want, k)
		} else {
			r.Value = []byte(fmt.Sprintf("v%d", i))
			want[k] = string(r.Value)
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := b.partition("table", 0)
	l := p.Log()
	waitFor(t, "the cleaner compacts the closed segments and drops their tombstones", func() bool {
		records, tombstones := closedRecords(t, l)
		return records > 0 && records <= keys && tombstones == 0
	})

	consumer := client(t, b, kgo.ConsumeTopics("table"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	end := p.HighWatermark()
	got := map[string]string{}
	consumed, last := 0, int64(-1)
	for last < end-1 {
		f := consumer.PollFetches(ctx)
		if err := f.Err(); err != nil {
			t.Fatal(err)
		}
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset <= last {
				t.Fatalf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
			consumed++
			if r.Value == nil {
				delete(got, string(r.Key))
			} else {
				got[string(r.Key)] = string(r.Value)
			}
		})
	}
	if len(got) != len(want) {
		t.Fatalf("consumer rebuilt %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %s: %q, want %q", k, got[k], v)
		}
	}
	segs := l.Segments()
	activeRecords := int(end - segs[len(segs)-1].BaseOffset)
	if consumed > keys+activeRecords {
		t.Fatalf("consumed %d records: more than %d keys plus %d in the active segment", consumed, keys, activeRecords)
	}
	t.Logf("consumed %d of %d produced records, %d segments, %d bytes", consumed, updates, len(segs), l.Size())

	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && m.GetCounter() != nil {
				found[mf.GetName()] = m.GetCounter().GetValue()
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "topic" && lp.GetValue() == "table" {
					found[mf.GetName()] = 1
				}
			}
		}
	}
	for _, name := range []string{"strand_cleaner_passes_total", "strand_cleaner_bytes_cleaned_total"} {
		if found[name] <= 0 {
			t.Errorf("%s is %v", name, found[name])
		}
	}
	for _, name := range []string{"strand_log_dirty_ratio", "strand_log_seconds_since_last_clean"} {
		if found[name] == 0 {
			t.Errorf("metric %s missing for the compacted topic", name)
		}
	}
}

// TestRetentionThroughBroker: retention.ms and retention.bytes delete old segments in the
// background; ListOffsets earliest reports the new log start, Fetch below it is
// OFFSET_OUT_OF_RANGE, and DeleteRecords moves the start the same way.
func TestRetentionThroughBroker(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), fastMaintenance)
	cl := client(t, b)
	// Records an hour old under retention.ms of one minute: closed segments go at once.
	createTopic(t, cl, "old", 1, map[string]string{"segment.bytes": "1024", "retention.ms": "60000"})
	hourAgo := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 20; i++ {
		recs := []record.Record{{Value: make([]byte, 200)}}
		raw, _ := record.Build(record.Header{BaseTimestamp: hourAgo, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
		if r := produceRaw(t, cl, "old", raw); r.ErrorCode != 0 {
			t.Fatalf("produce: %+v", r)
		}
	}
	p, _ := b.partition("old", 0)
	waitFor(t, "retention.ms deletes the closed segments", func() bool { return len(p.Log().Segments()) == 1 })
	start := p.Log().LogStartOffset()
	if start == 0 || start != p.Log().Segments()[0].BaseOffset {
		t.Fatalf("log start %d after retention, segments %+v", start, p.Log().Segments())
	}
	if got := listEarliest(t, cl, "old"); got != start {
		t.Fatalf("ListOffsets earliest %d, log start %d", got, start)
	}
	if code := fetchCode(t, cl, "old", start-1); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below the log start: code %d", code)
	}
	if code := fetchCode(t, cl, "old", start); code != 0 {
		t.Fatalf("fetch at the log start: code %d", code)
	}

	// retention.bytes keeps the partition near its limit, with fresh timestamps.
	createTopic(t, cl, "big", 1, map[string]string{"segment.bytes": "1024", "retention.bytes": "3000"})
	for i := 0; i < 40; i++ {
		if r := produceRaw(t, cl, "big", idemBatch(t, -1, -1, -1, 5)); r.ErrorCode != 0 {
			t.Fatalf("produce: %+v", r)
		}
	}
	pb, _ := b.partition("big", 0)
	waitFor(t, "retention.bytes bounds the partition", func() bool {
		segs := pb.Log().Segments()
		return pb.Log().Size()-segs[0].Size < 3000 && pb.Log().LogStartOffset() > 0
	})
	if got := listEarliest(t, cl, "big"); got != pb.Log().LogStartOffset() {
		t.Fatalf("ListOffsets earliest %d, log start %d", got, pb.Log().LogStartOffset())
	}

	// DeleteRecords in the middle of a segment.
	target := pb.HighWatermark() - 3
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "big"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = target
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	dr := request[*kmsg.DeleteRecordsResponse](t, cl, req)
	if pr := dr.Topics[0].Partitions[0]; pr.ErrorCode != 0 || pr.LowWatermark != target {
		t.Fatalf("delete records: %+v", pr)
	}
	if got := listEarliest(t, cl, "big"); got != target {
		t.Fatalf("ListOffsets earliest %d after DeleteRecords to %d", got, target)
	}
	if code := fetchCode(t, cl, "big", target-1); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below DeleteRecords' offset: code %d", code)
	}
}

func listEarliest(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	return listOffset(t, cl, topic, -2, 0)
}

func fetchCode(t *testing.T, cl *kgo.Client, topic string, offset int64) int16 {
	t.Helper()
	resp := request[*kmsg.FetchResponse](t, cl, fetchRequest(topic, offset, 0, 0))
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestConsumerOffsetsCompacted: __consumer_offsets (created at the first FindCoordinator with
// cleanup.policy=compact) is compacted by the same cleaner, and the committed offsets read
// back after a restart are the latest ones.
func TestConsumerOffsetsCompacted(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBrokerWith(t, dir, fastMaintenance)
	cl := client(t, b)
	adm := kadm.NewClient(cl)
	ctx := testContext(t)
	createTopic(t, cl, "events", 1, nil)
	// The first FindCoordinator creates __consumer_offsets.
	if _, err := adm.FetchOffsets(ctx, "compact-me"); err != nil {
		t.Fatal(err)
	}
	// Small segments so the offsets partition rolls and its closed segments can be cleaned.
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, group.OffsetsTopic
	for name, v := range map[string]string{"segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = name, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
	}
	alter.Resources = append(alter.Resources, res)
	if ar := request[*kmsg.IncrementalAlterConfigsResponse](t, cl, alter); ar.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter %s: %+v", group.OffsetsTopic, ar.Resources[0])
	}
	const commits = 300
	for i := 1; i <= commits; i++ {
		offsets := kadm.Offsets{}
		offsets.Add(kadm.Offset{Topic: "events", Partition: 0, At: int64(i), LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, "compact-me", offsets); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	p, _ := b.partition(group.OffsetsTopic, group.PartitionFor("compact-me", int32(len(b.meta.State().Topics[group.OffsetsTopic].Partitions))))
	l := p.Log()
	waitFor(t, "the cleaner compacts the group's offsets partition", func() bool {
		records, _ := closedRecords(t, l)
		return len(l.Segments()) > 1 && records > 0 && records <= 2
	})
	t.Logf("offsets partition: end %d, %d segments, %d bytes", l.LogEndOffset(), len(l.Segments()), l.Size())
	cl.Close()
	stop()

	b, _ = startBrokerWith(t, dir, fastMaintenance)
	fetched, err := kadm.NewClient(client(t, b)).FetchOffsets(testContext(t), "compact-me")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("events", 0); !ok || o.At != commits {
		t.Fatalf("committed offset after compaction and restart: %+v %v", o, ok)
	}
}

// TestConsumerDuringCleaning: a franz-go consumer reads a compacted topic from the
// beginning while a producer updates it and the cleaner compacts it every 50 ms; each key's
// versions only go forward, and the consumer ends with the producer's table.
func TestConsumerDuringCleaning(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), fastMaintenance)
	prod := client(t, b, kgo.ProducerBatchMaxBytes(2048), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	createTopic(t, prod, "versions", 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "8192", "min.cleanable.dirty.ratio": "0.01"})
	ctx := testContext(t)
	const keys, rounds = 50, 60
	want := map[string]string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := 1; r <= rounds; r++ {
			for k := 0; k < keys; k++ {
				prod.Produce(ctx, &kgo.Record{Topic: "versions", Key: []byte(fmt.Sprintf("k%02d", k)), Value: []byte(fmt.Sprintf("%06d", r))}, nil)
			}
			if err := prod.Flush(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for k := 0; k < keys; k++ {
		want[fmt.Sprintf("k%02d", k)] = fmt.Sprintf("%06d", rounds)
	}
	consumer := client(t, b, kgo.ConsumeTopics("versions"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(4096))
	seen := map[string]string{}
	p, _ := b.partition("versions", 0)
	produced := false
	for {
		select {
		case <-done:
			produced = true
		default:
		}
		if ctx.Err() != nil {
			t.Fatalf("consumer saw %d keys, k00 at %s", len(seen), seen["k00"])
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		f := consumer.PollFetches(pctx)
		cancel()
		f.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s-%d: %v", topic, partition, err)
			}
		})
		f.EachRecord(func(r *kgo.Record) {
			k, v := string(r.Key), string(r.Value)
			if prev, ok := seen[k]; ok && v <= prev {
				t.Fatalf("key %s went back from %s to %s at offset %d", k, prev, v, r.Offset)
			}
			seen[k] = v
		})
		if produced && len(seen) == keys && seen["k00"] == want["k00"] && seen[fmt.Sprintf("k%02d", keys-1)] == want[fmt.Sprintf("k%02d", keys-1)] {
			break
		}
	}
	for k, v := range want {
		if seen[k] != v {
			t.Fatalf("key %s ended at %q, want %q", k, seen[k], v)
		}
	}
	if st := p.Log().CleanerStatus(); st.LastClean.IsZero() {
		t.Fatal("the cleaner never ran during the test")
	}
}

// TestCompactedTopicRejectsNullKeys: as in Kafka, a record without a key sent to a
// compacted topic is refused with INVALID_RECORD and nothing of its batch is stored.
func TestCompactedTopicRejectsNullKeys(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "keyed", 1, map[string]string{"cleanup.policy": "compact"})
	keyless := idemBatch(t, -1, -1, -1, 2) // records without keys
	if r := produceRaw(t, cl, "keyed", keyless); r.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("keyless batch to a compacted topic: %+v", r)
	}
	recs := []record.Record{{Key: []byte("a"), Value: []byte("1")}, {OffsetDelta: 1, Key: []byte("b"), Value: nil}}
	keyed, _ := record.Build(record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecZstd)
	if r := produceRaw(t, cl, "keyed", keyed); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("keyed batch: %+v", r)
	}
	createTopic(t, cl, "plain", 1, nil)
	if r := produceRaw(t, cl, "plain", idemBatch(t, -1, -1, -1, 2)); r.ErrorCode != 0 {
		t.Fatalf("keyless batch to a delete topic: %+v", r)
	}
}
