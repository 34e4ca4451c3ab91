package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/test/harness"
)

// The benchmarks run jobs against a real strand on the same input: benchRecords records
// over benchKeys keys in a 6-partition topic. Each reports records/s from the first record
// processed to the last output acknowledged, so the group join is not in the figure. Run
// them in one invocation and compare the ratios:
//
//	go test -run XXX -bench 'Job|Loop' -benchtime 2x ./stream/
const (
	benchRecords = 300000
	benchKeys    = 1000
)

func benchNode(b *testing.B) (*harness.Node, *kgo.Client) {
	b.Helper()
	node := harness.Start(b, harness.Options{Args: []string{"--fsync", "never"}})
	cl := node.Client(b)
	ctx := harness.Context(b, time.Minute)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, 1, nil, "bench-in"); err != nil {
		b.Fatal(err)
	}
	value := []byte(`{"order_id":"o-0000000","amount":12.5}`)
	for i := 0; i < benchRecords; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "bench-in", Key: []byte(fmt.Sprintf("key-%04d", i%benchKeys)), Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return node, cl
}

// runJob runs topology as application appID until it has processed every input record,
// and returns the time from its first record to the end of Run (which flushes and commits).
func runJob(b *testing.B, node *harness.Node, appID string, build func(t *stream.Topology, seen func())) time.Duration {
	return runJobWith(b, node, appID, false, build)
}

func runJobWith(b *testing.B, node *harness.Node, appID string, exactlyOnce bool, build func(t *stream.Topology, seen func())) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(harness.Context(b, 2*time.Minute))
	defer cancel()
	var n atomic.Int64
	var first atomic.Int64
	t := stream.NewTopology()
	build(t, func() {
		if n.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
		}
		if n.Load() == benchRecords {
			cancel()
		}
	})
	app, err := stream.New(t, stream.Config{Brokers: []string{node.KafkaAddr}, AppID: appID, StateDir: b.TempDir(), CommitInterval: time.Second,
		ExactlyOnce: exactlyOnce, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := app.Run(ctx); err != nil {
		b.Fatal(err)
	}
	if n.Load() < benchRecords {
		b.Fatalf("job stopped after %d of %d records", n.Load(), benchRecords)
	}
	return time.Since(time.Unix(0, first.Load()))
}

func createTopic(b *testing.B, node *harness.Node, topic string) string {
	b.Helper()
	if _, err := kadm.NewClient(node.Client(b)).CreateTopic(harness.Context(b, time.Minute), 6, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	return topic
}

func report(b *testing.B, total time.Duration) {
	b.ReportMetric(float64(benchRecords)*float64(b.N)/total.Seconds(), "records/s")
}

// BenchmarkHandLoop is the reference: a franz-go group consumer that decodes each record,
// changes it as BenchmarkMapJob does, produces it to another topic, and commits after
// flushing, as a careful hand-written job would.
func BenchmarkHandLoop(b *testing.B) {
	node, _ := benchNode(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		ctx := harness.Context(b, 2*time.Minute)
		cl := node.Client(b, kgo.ConsumerGroup(fmt.Sprintf("hand-%d", i)), kgo.ConsumeTopics("bench-in"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.Balancers(kgo.RangeBalancer()))
		out := createTopic(b, node, fmt.Sprintf("hand-out-%d", i))
		var started time.Time
		seen := 0
		for seen < benchRecords {
			fetches := cl.PollFetches(ctx)
			if err := fetches.Err0(); err != nil {
				b.Fatal(err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				if seen == 0 {
					started = time.Now()
				}
				seen++
				// The same work as BenchmarkMapJob: decode, change, encode.
				var o Order
				if err := json.Unmarshal(r.Value, &o); err != nil {
					b.Fatal(err)
				}
				o.Amount *= 2
				value, err := json.Marshal(o)
				if err != nil {
					b.Fatal(err)
				}
				cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: value}, nil)
			})
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				b.Fatal(err)
			}
		}
		cl.Close() // the jobs' figures include leaving the group too
		total += time.Since(started)
	}
	report(b, total)
}

// BenchmarkMapJob is a stateless job: decode, map the value, encode, write.
func BenchmarkMapJob(b *testing.B) {
	node, _ := benchNode(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += runJob(b, node, fmt.Sprintf("map-%d", i), func(t *stream.Topology, seen func()) {
			in := stream.From(t, stream.String(), stream.JSON[Order](), "bench-in")
			stream.MapValues(in, func(_ string, o Order) Order { o.Amount *= 2; seen(); return o }).
				To(createTopic(b, node, fmt.Sprintf("map-out-%d", i)), stream.String(), stream.JSON[Order]())
		})
	}
	report(b, total)
}

// BenchmarkCountJob is a stateful job: a count per key in a Pebble store with its
// changelog, the latest count per key written out at each commit (the write cache). The
// clock stops when Run returns, after the last commit flushed the cache.
func BenchmarkCountJob(b *testing.B) {
	node, _ := benchNode(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += runJob(b, node, fmt.Sprintf("count-%d", i), countJob(b, node, fmt.Sprintf("count-out-%d", i)))
	}
	report(b, total)
}

func countJob(b *testing.B, node *harness.Node, out string) func(t *stream.Topology, seen func()) {
	return func(t *stream.Topology, seen func()) {
		in := stream.From(t, stream.String(), stream.JSON[Order](), "bench-in").Peek(func(string, Order) { seen() })
		counts := stream.Count(stream.GroupByKey(in, stream.String(), stream.JSON[Order]()), "counts")
		counts.ToStream().To(createTopic(b, node, out), stream.String(), stream.Int64())
	}
}

// BenchmarkCountJobExactlyOnce runs the count job at-least-once and exactly-once on the same
// input, one after the other in each iteration, and reports both rates and their ratio
// (eos/alos): what a transaction per commit (AddPartitionsToTxn, TxnOffsetCommit, EndTxn and
// its markers, read_committed fetches) costs at a 1 s commit interval.
func BenchmarkCountJobExactlyOnce(b *testing.B) {
	node, _ := benchNode(b)
	var alos, eos time.Duration
	for i := 0; i < b.N; i++ {
		alos += runJobWith(b, node, fmt.Sprintf("count-alos-%d", i), false, countJob(b, node, fmt.Sprintf("count-alos-out-%d", i)))
		eos += runJobWith(b, node, fmt.Sprintf("count-eos-%d", i), true, countJob(b, node, fmt.Sprintf("count-eos-out-%d", i)))
	}
	records := float64(benchRecords) * float64(b.N)
	b.ReportMetric(records/alos.Seconds(), "alos-records/s")
	b.ReportMetric(records/eos.Seconds(), "eos-records/s")
	b.ReportMetric(alos.Seconds()/eos.Seconds(), "eos/alos")
}
