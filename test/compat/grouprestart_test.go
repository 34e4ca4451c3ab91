package compat

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestBrokerRestartUnderActiveGroup restarts strand while two group members consume and
// commit: committed offsets survive, the members carry on, and every record is read.
func TestBrokerRestartUnderActiveGroup(t *testing.T) { brokerRestartUnderActiveGroup(t, false) }

// TestBrokerRestartUnderConsumerGroupProtocol is the same with KIP-848 members. Their
// membership lives in the coordinator's memory (only offsets are in __consumer_offsets),
// so after the restart they are told UNKNOWN_MEMBER_ID and join again as new members.
func TestBrokerRestartUnderConsumerGroupProtocol(t *testing.T) {
	brokerRestartUnderActiveGroup(t, true)
}

func brokerRestartUnderActiveGroup(t *testing.T, nextGen bool) {
	node := harness.Start(t, harness.Options{Args: []string{"--broker-config", "group.consumer.heartbeat.interval.ms=500"}})
	ctx := harness.Context(t, 3*time.Minute)
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(ctx, 6, 1, nil, "restart"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		opts := []kgo.Opt{kgo.ConsumerGroup("restarters"), kgo.ConsumeTopics("restart"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond), kgo.DisableAutoCommit()}
		if nextGen {
			opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer()))
		}
		cl := node.Client(t, opts...)
		pollUntilStopped(ctx, &wg, stop, cl, 200*time.Millisecond, func(f kgo.Fetches) {
			f.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				seen[string(r.Value)] = true
				mu.Unlock()
			})
			cl.CommitUncommittedOffsets(ctx)
		})
	}
	defer func() { close(stop); wg.Wait() }()
	produce := func(from, n int) {
		prod := node.Client(t, kgo.DefaultProduceTopic("restart"), kgo.RecordRetries(20))
		defer prod.Close()
		for i := from; i < from+n; i++ {
			prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitSeen := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			got := len(seen)
			mu.Unlock()
			if got >= n {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("read %d of %d records", len(seen), n)
	}
	produce(0, 500)
	waitSeen(500)
	time.Sleep(time.Second) // let the last commits land
	before, err := kadm.NewClient(node.Client(t)).FetchOffsets(ctx, "restarters")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	before.Each(func(o kadm.OffsetResponse) { sum += o.At })

	node.Restart(t) // SIGTERM, then the same data dir and ports; the members keep running

	after, err := kadm.NewClient(node.Client(t)).FetchOffsets(ctx, "restarters")
	if err != nil {
		t.Fatal(err)
	}
	var sumAfter int64
	after.Each(func(o kadm.OffsetResponse) { sumAfter += o.At })
	if sumAfter < sum {
		t.Fatalf("committed offsets went back across the restart: %d then %d", sum, sumAfter)
	}
	produce(500, 500)
	waitSeen(1000)
	t.Logf("committed offsets before restart %d, after %d; all 1000 records read by the members that outlived the restart", sum, sumAfter)
}
