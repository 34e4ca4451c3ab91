package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/test/harness"
)

// restoreLog collects the "stream: restored" events an App logs.
type restoreLog struct {
	mu      sync.Mutex
	records map[string]int64 // "topic/partition" → records restored
}

func (l *restoreLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *restoreLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *restoreLog) WithGroup(string) slog.Handler            { return l }
func (l *restoreLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "stream: restored" {
		return nil
	}
	var topic string
	var partition, records int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "topic":
			topic = a.Value.String()
		case "partition":
			partition = a.Value.Int64()
		case "records":
			records = a.Value.Int64()
		}
		return true
	})
	l.mu.Lock()
	l.records[fmt.Sprintf("%s/%d", topic, partition)] += records
	l.mu.Unlock()
	return nil
}

func (l *restoreLog) total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, v := range l.records {
		n += v
	}
	return n
}

func countTopology() *stream.Topology {
	t := stream.NewTopology()
	in := stream.From(t, stream.String(), stream.String(), "events")
	stream.Count(stream.GroupByKey(in, stream.String(), stream.String()), "counts").ToStream().To("event-counts", stream.String(), stream.Int64())
	return t
}

// runUntil runs an App until the output topic holds a count for wantKeys keys, then stops it.
func runUntil(t *testing.T, node *harness.Node, stateDir string, logs *restoreLog, wantKeys int) {
	t.Helper()
	app, err := stream.New(countTopology(), stream.Config{Brokers: []string{node.KafkaAddr}, AppID: "counter",
		StateDir: stateDir, CommitInterval: 200 * time.Millisecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(harness.Context(t, time.Minute))
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	out := node.Client(t, kgo.ConsumeTopics("event-counts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	counts := map[string]int64{}
	for len(counts) < wantKeys {
		fetches := out.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("output reached %d of %d keys", len(counts), wantKeys)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n, err := stream.Int64().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			counts[string(r.Key)] = n
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("count of %s = %d, want 1", k, n)
		}
	}
}

// TestRunRestoresOnlyTheTail: an instance that comes back to a state directory restores
// only the changelog records written since it left, not the whole changelog. Every event
// has a key of its own, so each writes exactly one changelog record.
func TestRunRestoresOnlyTheTail(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	cl := node.Client(t)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"events", "event-counts"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	produce := func(n int) {
		for i := 0; i < n; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: "events", Key: []byte(fmt.Sprintf("k%03d", next)), Value: []byte("v")}, nil)
			next++
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()

	produce(100)
	logsA := &restoreLog{records: map[string]int64{}}
	runUntil(t, node, dirA, logsA, 100) // fresh: nothing to restore, 100 changelog records written
	if n := logsA.total(); n != 0 {
		t.Errorf("first run restored %d records, want 0", n)
	}

	produce(30)
	logsB := &restoreLog{records: map[string]int64{}}
	runUntil(t, node, dirB, logsB, 130) // another directory: the whole changelog, then 30 more
	if n := logsB.total(); n != 100 {
		t.Errorf("run in an empty directory restored %d records, want the whole changelog (100)", n)
	}

	produce(5)
	logsA2 := &restoreLog{records: map[string]int64{}}
	runUntil(t, node, dirA, logsA2, 135) // back in A: only what B wrote
	if n := logsA2.total(); n != 30 {
		t.Errorf("return to the first directory restored %d records, want only the 30 written since", n)
	}
}

func TestRunChecksTopics(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "users"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "views"); err != nil {
		t.Fatal(err)
	}
	build := func(viewTopic string) *stream.Topology {
		top := stream.NewTopology()
		users := stream.TableFrom(top, "users", "users", stream.String(), stream.String())
		views := stream.From(top, stream.String(), stream.String(), viewTopic)
		stream.JoinTable(views, users, func(_, v, u string) string { return v + u }).To("out", stream.String(), stream.String())
		return top
	}
	run := func(top *stream.Topology) error {
		app, err := stream.New(top, stream.Config{Brokers: []string{node.KafkaAddr}, AppID: "checks", StateDir: t.TempDir()})
		if err != nil {
			return err
		}
		return app.Run(ctx)
	}
	err := run(build("views"))
	if !errors.Is(err, stream.ErrCoPartitioning) || !strings.Contains(err.Error(), "users: 3") || !strings.Contains(err.Error(), "views: 4") {
		t.Errorf("co-partitioning: err = %v", err)
	}
	err = run(build("no-such-topic"))
	if !errors.Is(err, stream.ErrMissingTopic) || !strings.Contains(err.Error(), "no-such-topic") {
		t.Errorf("missing topic: err = %v", err)
	}
}

// TestRunDeadLettersBadRecords: under BadRecordDeadLetter a record that does not decode goes
// to the dead-letter topic with the error in its headers, and the records after it are
// processed: no crash loop.
func TestRunDeadLettersBadRecords(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	cl := node.Client(t)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"orders", "amounts"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{`{"order_id":"1","amount":1}`, `{"order_id":`, `{"order_id":"3","amount":3}`} {
		cl.Produce(ctx, &kgo.Record{Topic: "orders", Key: []byte("c"), Value: []byte(v)}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	top := stream.NewTopology()
	stream.MapValues(stream.From(top, stream.String(), stream.JSON[Order](), "orders"), func(_ string, o Order) float64 { return o.Amount }).
		To("amounts", stream.String(), stream.JSON[float64]())
	reg := prometheus.NewRegistry()
	app, err := stream.New(top, stream.Config{Brokers: []string{node.KafkaAddr}, AppID: "dlq", StateDir: t.TempDir(),
		OnBadRecord: stream.BadRecordDeadLetter, DeadLetterTopic: "orders-dlq", CommitInterval: 100 * time.Millisecond, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()

	read := func(topic string, n int) []*kgo.Record {
		c := node.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var out []*kgo.Record
		for len(out) < n {
			fetches := c.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: %d of %d records", topic, len(out), n)
			}
			fetches.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		}
		return out
	}
	amounts := read("amounts", 2)
	if string(amounts[0].Value) != "1" || string(amounts[1].Value) != "3" {
		t.Errorf("amounts = %s, %s; want 1, 3", amounts[0].Value, amounts[1].Value)
	}
	dead := read("orders-dlq", 1)[0]
	headers := map[string]string{}
	for _, h := range dead.Headers {
		headers[h.Key] = string(h.Value)
	}
	if string(dead.Value) != `{"order_id":` || headers[stream.HeaderErrorTopic] != "orders" ||
		headers[stream.HeaderErrorOffset] != "1" || !strings.Contains(headers[stream.HeaderErrorMessage], "json") {
		t.Errorf("dead letter %q with headers %v", dead.Value, headers)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := metricSum(t, reg, "strand_stream_bad_records_total"); n != 1 {
		t.Errorf("strand_stream_bad_records_total = %v, want 1", n)
	}
	if n := metricSum(t, reg, "strand_stream_records_processed_total"); n != 3 {
		t.Errorf("strand_stream_records_processed_total = %v, want 3", n)
	}
	if n := metricSum(t, reg, "strand_stream_commit_seconds"); n < 1 {
		t.Errorf("strand_stream_commit_seconds counted %v commits, want at least 1", n)
	}
}

// metricSum adds up a counter family's values (or a histogram's sample counts).
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}
