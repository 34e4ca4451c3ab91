package broker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

// startBroker runs a broker in process on loopback ports with data in dir.
func startBroker(t testing.TB, dir string) (*Broker, func()) {
	t.Helper()
	return startBrokerWith(t, dir, nil)
}

// startBrokerWith is startBroker with changes to the default test config.
func startBrokerWith(t testing.TB, dir string, change func(*Config)) (*Broker, func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("STRAND_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	noDelay := time.Duration(0)
	cfg.GroupInitialRebalanceDelay = &noDelay
	if change != nil {
		change(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("broker exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("broker not ready after 30s")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker run: %v", err)
		}
	}
	t.Cleanup(stop)
	return b, stop
}

func client(t testing.TB, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.KafkaAddr().String())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// request sends one raw request and returns the response.
func request[R kmsg.Response](t testing.TB, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Request(testContext(t), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp.(R)
}

func createTopic(t testing.TB, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.CreateTopicsResponse](t, cl, req)
	if resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create %s: code %d %v", name, resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage)
	}
}

// produceRaw sends one batch to partition 0 with acks=all and returns that partition's answer.
func produceRaw(t testing.TB, cl *kgo.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return produceRawTo(t, cl, topic, 0, batch)
}

func produceRawTo(t testing.TB, cl *kgo.Client, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ProduceResponse](t, cl, req)
	return resp.Topics[0].Partitions[0]
}

func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte{byte(seq), byte(i)}}
	}
	b, err := record.Build(record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdempotentProduceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBroker(t, dir)
	cl := client(t, b)
	createTopic(t, cl, "idem", 1, nil)
	init := request[*kmsg.InitProducerIDResponse](t, cl, kmsg.NewPtrInitProducerIDRequest())
	if init.ErrorCode != 0 || init.ProducerID < 0 {
		t.Fatalf("init producer id: %+v", init)
	}
	pid := init.ProducerID
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 0, 3)); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", r)
	}
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 3, 2)); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("second batch: %+v", r)
	}
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 0, 3)); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("duplicate must be answered with the original offset: %+v", r)
	}
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 9, 1)); r.ErrorCode != 45 { // OUT_OF_ORDER_SEQUENCE_NUMBER
		t.Fatalf("gap: %+v", r)
	}
	cl.Close()
	stop()

	b, _ = startBroker(t, dir)
	cl = client(t, b)
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 3, 2)); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("duplicate after restart must still be detected: %+v", r)
	}
	if r := produceRaw(t, cl, "idem", idemBatch(t, pid, 0, 5, 1)); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("next batch after restart: %+v", r)
	}
	next := request[*kmsg.InitProducerIDResponse](t, cl, kmsg.NewPtrInitProducerIDRequest())
	if next.ProducerID == pid {
		t.Fatalf("producer id %d handed out twice across a restart", pid)
	}
}

func TestCorruptBatchesRejectedAndDataIntact(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "bad", 1, map[string]string{"max.message.bytes": "2000"})
	good := idemBatch(t, -1, -1, -1, 2)
	if r := produceRaw(t, cl, "bad", append([]byte(nil), good...)); r.ErrorCode != 0 {
		t.Fatalf("good batch: %+v", r)
	}
	flip := append([]byte(nil), good...)
	flip[len(flip)-1] ^= 0xff
	magic1 := append([]byte(nil), good...)
	magic1[16] = 1
	big := idemBatch(t, -1, -1, -1, 1)
	bigRecs := []record.Record{{Value: make([]byte, 3000)}}
	big, _ = record.Build(record.Header{ProducerID: -1, BaseSequence: -1}, bigRecs, record.CodecNone)
	cases := []struct {
		name  string
		batch []byte
		code  int16
	}{
		{"bad crc", flip, 2},                 // CORRUPT_MESSAGE
		{"magic 1", magic1, 2},               // CORRUPT_MESSAGE
		{"truncated", good[:len(good)-5], 2}, // CORRUPT_MESSAGE
		{"garbage", []byte("not a batch at all, not at all"), 2},
		{"too large", big, 10}, // MESSAGE_TOO_LARGE
	}
	for _, c := range cases {
		if r := produceRaw(t, cl, "bad", c.batch); r.ErrorCode != c.code {
			t.Errorf("%s: code %d, want %d", c.name, r.ErrorCode, c.code)
		}
	}
	if r := produceRaw(t, cl, "no-such-topic-here", good); r.ErrorCode != 3 { // UNKNOWN_TOPIC_OR_PARTITION
		t.Errorf("unknown topic: code %d", r.ErrorCode)
	}
	p, _ := b.partition("bad", 0)
	data, err := p.Log().ReadBytes(0, 1<<20, p.HighWatermark(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(data)
	if err != nil || len(parts) != 1 || p.Log().LogEndOffset() != 2 {
		t.Fatalf("stored data changed: %d batches, end %d, err %v", len(parts), p.Log().LogEndOffset(), err)
	}
}

// fetchRequest is a Fetch of partition 0 of topic from offset, with min_bytes 1.
func fetchRequest(topic string, offset int64, isolation int8, maxWait int32) *kmsg.FetchRequest {
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = offset, 1<<20
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = maxWait, 1, 1<<20, isolation
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{rp}}}
	return req
}

// listOffset is ListOffsets for partition 0 of topic at timestamp (-1 latest, -2 earliest)
// under the isolation level (1: read_committed).
func listOffset(t testing.TB, cl *kgo.Client, topic string, timestamp int64, isolation int8) int64 {
	t.Helper()
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = timestamp
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{rp}}}
	resp := request[*kmsg.ListOffsetsResponse](t, cl, req)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("list offsets: code %d", p.ErrorCode)
	}
	return resp.Topics[0].Partitions[0].Offset
}

// longPoll sends req on a client of its own, calls change once the fetch has had time to
// park, and fails unless the answer came well before max_wait: woken by the change.
func longPoll(t *testing.T, b *Broker, req *kmsg.FetchRequest, change func()) *kmsg.FetchResponse {
	t.Helper()
	type result struct {
		resp *kmsg.FetchResponse
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	fetcher := client(t, b)
	start := time.Now()
	go func() {
		resp, err := req.RequestWith(context.Background(), fetcher)
		done <- result{resp, time.Since(start), err}
	}()
	time.Sleep(300 * time.Millisecond) // let the fetch park; the assertions do not depend on it
	change()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond; res.took > maxWait*3/4 {
		t.Fatalf("long poll returned after %v of max wait %v: not woken by the change", res.took, maxWait)
	}
	return res.resp
}

func TestLongPollWakesOnProduce(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "poll", 1, nil)
	resp := longPoll(t, b, fetchRequest("poll", 0, 0, 20000), func() {
		if r := produceRaw(t, cl, "poll", idemBatch(t, -1, -1, -1, 1)); r.ErrorCode != 0 {
			t.Fatalf("produce: %+v", r)
		}
	})
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 1 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch answer %+v", p)
	}
}

// TestFetchEncodingMatchesKmsg decodes our hand-encoded Fetch responses with kmsg for every
// version we advertise.
func TestFetchEncodingMatchesKmsg(t *testing.T) {
	dir := t.TempDir()
	cfg := journal.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := journal.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(context.Background(), idemBatch(t, -1, -1, -1, 2), journal.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := l.ReadBytes(0, 1<<20, l.LogEndOffset(), true)
	for v := int16(4); v <= 12; v++ {
		body := &fetchBody{version: v, topics: []fetchTopic{
			{name: "a", partitions: []fetchPartition{{id: 0, highWatermark: 6, lastStable: 4, logStart: 0, ranges: res.Ranges, size: res.Size,
				aborted: []journal.AbortedTxn{{ProducerID: 9, FirstOffset: 2, LastOffset: 5}, {ProducerID: 11, FirstOffset: 3, LastOffset: 6}}}, {id: 1, errorCode: 3, highWatermark: -1, lastStable: -1, logStart: -1}}},
			{name: "bb", partitions: []fetchPartition{{id: 7, highWatermark: 0, lastStable: 0}}},
		}}
		var buf writerBuffer
		if err := body.WriteBody(&buf, nil); err != nil {
			t.Fatal(err)
		}
		if len(buf) != body.BodyLen() {
			t.Fatalf("v%d: wrote %d bytes, BodyLen says %d", v, len(buf), body.BodyLen())
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(v)
		if err := resp.ReadFrom(buf); err != nil {
			t.Fatalf("v%d: kmsg cannot read our response: %v", v, err)
		}
		if len(resp.Topics) != 2 || resp.Topics[0].Topic != "a" || resp.Topics[1].Partitions[0].Partition != 7 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		p0, p1 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
		if string(p0.RecordBatches) != string(want) || p0.HighWatermark != 6 || p0.LastStableOffset != 4 || p1.ErrorCode != 3 {
			t.Fatalf("v%d: partition 0 %+v / partition 1 %+v", v, p0, p1)
		}
		if len(p0.AbortedTransactions) != 2 || p0.AbortedTransactions[1].ProducerID != 11 || p0.AbortedTransactions[1].FirstOffset != 3 || p1.AbortedTransactions != nil {
			t.Fatalf("v%d: aborted transactions %+v / %+v", v, p0.AbortedTransactions, p1.AbortedTransactions)
		}
		if v >= 5 && p0.LogStartOffset != 0 {
			t.Fatalf("v%d: log start %d", v, p0.LogStartOffset)
		}
	}
}

type writerBuffer []byte

func (w *writerBuffer) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
