package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/test/harness"
)

// messageLog collects the messages an App logs.
type messageLog struct {
	mu       sync.Mutex
	messages []string
}

func (l *messageLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *messageLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *messageLog) WithGroup(string) slog.Handler            { return l }
func (l *messageLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.messages = append(l.messages, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *messageLog) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.messages {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// TestRunExactlyOnceAcrossRebalanceAndFencing runs the count job exactly-once while a second
// instance joins (the rebalance aborts the open transaction, and the tasks start again from
// their last commit) and then while another producer takes the first instance's
// transactional id (the instance is fenced, drops its tasks and rejoins with a new
// producer). Read read_committed, every key's counts must only grow and end at the number of
// its events: nothing lost, nothing counted twice.
func TestRunExactlyOnceAcrossRebalanceAndFencing(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 50*time.Second)
	cl := node.Client(t)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"events", "event-counts"} {
		if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	const keys = 40
	want := map[string]int64{}
	produce := func(n int) {
		for i := 0; i < n; i++ {
			key := fmt.Sprintf("k%02d", i%keys)
			want[key]++
			cl.Produce(ctx, &kgo.Record{Topic: "events", Key: []byte(key), Value: []byte("v")}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	start := func(instance string, logs *messageLog) {
		app, err := stream.New(countTopology(), stream.Config{Brokers: []string{node.KafkaAddr}, AppID: "eos-counter",
			StateDir: t.TempDir(), CommitInterval: 200 * time.Millisecond, ExactlyOnce: true, InstanceID: instance,
			SessionTimeout: 6 * time.Second, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := app.Run(runCtx); err != nil {
				t.Errorf("instance %s: %v", instance, err)
			}
		}()
	}

	out := node.Client(t, kgo.ConsumeTopics("event-counts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]int64{}
	// readUntil reads the output until every key has reached its count so far.
	readUntil := func(what string) {
		t.Helper()
		for {
			done := true
			for k, n := range want {
				if got[k] < n {
					done = false
				}
			}
			if done {
				return
			}
			fetches := out.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: output short: %v, want %v", what, got, want)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				n, err := stream.Int64().Decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				if n <= got[string(r.Key)] {
					t.Errorf("%s: count of %s went from %d to %d: an event was counted twice", what, r.Key, got[string(r.Key)], n)
				}
				got[string(r.Key)] = n
			})
		}
	}

	logsA, logsB := &messageLog{}, &messageLog{}
	start("a", logsA)
	produce(1000)
	readUntil("one instance")

	start("b", logsB)
	for i := 0; i < 10; i++ { // events flow while b joins and the group rebalances
		produce(100)
		time.Sleep(50 * time.Millisecond)
	}
	readUntil("two instances")
	if !logsA.has("stream: partitions revoked; the open transaction aborts") {
		t.Errorf("instance a saw no rebalance")
	}

	// Another producer with a's transactional id fences a's producer (InitProducerId bumps
	// the epoch); a's next transactional request fails and a must rejoin, not write again.
	fencer := node.Client(t, kgo.TransactionalID("eos-counter-a"))
	if err := fencer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := fencer.ProduceSync(ctx, &kgo.Record{Topic: "events", Key: []byte("fence"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("fencing produce: %v", err)
	}
	if err := fencer.EndTransaction(ctx, kgo.TryAbort); err != nil { // the probe is not an event
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		produce(100)
		time.Sleep(50 * time.Millisecond)
	}
	readUntil("after fencing")
	if !logsA.has("stream: producer fenced") {
		t.Errorf("instance a was never fenced")
	}
	stop()
	wg.Wait()

	for k, n := range want {
		if got[k] != n {
			t.Errorf("count of %s = %d, want %d", k, got[k], n)
		}
	}
	if _, ok := got["fence"]; ok {
		t.Errorf("the aborted probe was counted")
	}
}

// ticker forwards one record from a wall-clock punctuator, with no input behind it.
type ticker struct{ fired bool }

func (p *ticker) Init(ctx stream.ProcessorContext) error {
	ctx.Schedule(100*time.Millisecond, stream.WallClockTime, func(now time.Time) error {
		if p.fired {
			return nil
		}
		p.fired = true
		return ctx.Forward(stream.Record{Key: "tick", Value: "t", Timestamp: now})
	})
	return nil
}
func (p *ticker) Process(stream.Record) error { return nil }
func (p *ticker) Close() error                { return nil }

// TestRunExactlyOncePunctuatorOutputCommits: a record a wall-clock punctuator writes while
// no input arrives is in a transaction too, and the next commit must end it, or
// read_committed readers would never see it (and the open transaction would hold back
// every reader of the topic until it timed out).
func TestRunExactlyOncePunctuatorOutputCommits(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 30*time.Second)
	adm := kadm.NewClient(node.Client(t))
	for _, topic := range []string{"ticks-in", "ticks-out"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	top := stream.NewTopology()
	stream.AddSource(top, "src", stream.String(), stream.String(), "ticks-in")
	top.AddProcessor("ticker", func() stream.Processor { return &ticker{} }, "src")
	stream.AddSink(top, "out", "ticks-out", stream.String(), stream.String(), "ticker")
	app, err := stream.New(top, stream.Config{Brokers: []string{node.KafkaAddr}, AppID: "eos-ticker", StateDir: t.TempDir(),
		CommitInterval: 200 * time.Millisecond, ExactlyOnce: true, Logger: slog.New(&messageLog{})})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()

	out := node.Client(t, kgo.ConsumeTopics("ticks-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	// Long enough for a leftover transaction: the instance never stops while we wait.
	waitCtx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	var got []string
	for len(got) == 0 && waitCtx.Err() == nil {
		out.PollFetches(waitCtx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Key)) })
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(got) != 1 || got[0] != "tick" {
		t.Fatalf("read_committed output = %q, want the punctuator's one record, committed while the app runs", got)
	}
}
