package compat

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

type acked struct {
	partition int32
	offset    int64
}

// readAll consumes a topic from the start until it has read want records.
func readAll(t *testing.T, node *harness.Node, topic string, want int) map[acked]string {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	cl := node.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[acked]string{}
	for len(got) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(got), want)
		}
		fetches.EachRecord(func(r *kgo.Record) { got[acked{r.Partition, r.Offset}] = string(r.Value) })
	}
	return got
}

// TestSIGTERMThenRestart: a clean stop exits 0, and topics, configs and records survive.
func TestSIGTERMThenRestart(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	retention := "7200000"
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &retention}, "durable"); err != nil {
		t.Fatal(err)
	}
	prod := node.Client(t, kgo.DefaultProduceTopic("durable"))
	const n = 5000
	for i := 0; i < n; i++ {
		prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	node.Restart(t) // SIGTERM, exit 0 asserted, then start on the same data
	if got := readAll(t, node, "durable", n); len(got) != n {
		t.Fatalf("%d records after restart, want %d", len(got), n)
	}
	rcs, err := kadm.NewClient(node.Client(t)).DescribeTopicConfigs(harness.Context(t, time.Minute), "durable")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rcs[0].Configs {
		found = found || c.Key == "retention.ms" && c.MaybeValue() == retention
	}
	if !found {
		t.Fatalf("retention.ms lost across restart: %+v", rcs[0].Configs)
	}
}

// TestKillNineLosesNoAcknowledgedRecord kills the broker with SIGKILL while an idempotent
// producer writes with acks=all, restarts it, and checks every acknowledged record.
func TestKillNineLosesNoAcknowledgedRecord(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 2*time.Minute)
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(ctx, 4, 1, nil, "crash"); err != nil {
		t.Fatal(err)
	}
	prod := node.Client(t, kgo.DefaultProduceTopic("crash"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(3),
		kgo.RecordDeliveryTimeout(5*time.Second), kgo.ProducerLinger(time.Millisecond))
	var mu sync.Mutex
	ok := map[acked]string{}
	produceCtx, stopProducing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; produceCtx.Err() == nil; i++ {
			value := fmt.Sprintf("record-%d", i)
			prod.Produce(produceCtx, &kgo.Record{Value: []byte(value)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					ok[acked{r.Partition, r.Offset}] = value
					mu.Unlock()
				}
			})
			if i%500 == 499 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	node.Kill(t)
	stopProducing()
	wg.Wait()
	prod.Close() // fails what is still in flight; those were never acknowledged
	mu.Lock()
	acknowledged := len(ok)
	mu.Unlock()
	if acknowledged == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	node.Restart(t)
	ends, err := kadm.NewClient(node.Client(t)).ListEndOffsets(harness.Context(t, time.Minute), "crash")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	got := readAll(t, node, "crash", total)
	lost := 0
	for at, value := range ok {
		if got[at] != value {
			lost++
		}
	}
	t.Logf("acknowledged before SIGKILL: %d; present after restart: %d; lost: %d", acknowledged, total, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged records lost", lost)
	}
}
