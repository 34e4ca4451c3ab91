package streamjobs

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestOrderTotalsExactlyOnceSurvivesKills runs two ordertotals --exactly-once instances
// against a real strand and feeds them 20,000 orders over 500 customers. While orders flow
// it kills instance 1 with SIGKILL half a commit interval after one of its commits (a
// transaction open) and restarts it on the same state directory; later it kills instance 0
// right as a commit lands and restarts it with its state directory wiped, so its stores come
// back from the changelogs alone, read_committed. Read read_committed, order-totals must
// then hold exactly the table computed from the orders, and every customer's successive
// counts must only grow: an order counted twice, even for a moment, fails the test.
func TestOrderTotalsExactlyOnceSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strand and two job processes")
	}
	const (
		orders    = 20000
		customers = 500
	)
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 100*time.Second)
	bin := exampleBinary(t, "ordertotals")
	stateRoot := t.TempDir()
	stateDir := func(i int) string { return filepath.Join(stateRoot, fmt.Sprint(i)) }
	start := func(i int) *proc {
		return startProc(t, fmt.Sprintf("ordertotals-eos-%d", i), bin, "--exactly-once",
			"--brokers", node.KafkaAddr, "--state-dir", stateDir(i),
			"--instance-id", fmt.Sprintf("instance-%d", i), "--session-timeout", "6s", "--commit-interval", "500ms")
	}
	instances := []*proc{start(0), start(1)}

	cl := node.Client(t)
	adm := kadm.NewClient(cl)
	waitFor(t, ctx, "the job to create its topics", func() bool {
		td, err := adm.ListTopics(ctx, "orders", "order-totals", "ordertotals-totals-changelog")
		return err == nil && td.Has("orders") && td.Has("order-totals") && td.Has("ordertotals-totals-changelog") &&
			td["orders"].Err == nil && td["order-totals"].Err == nil
	})

	rng := rand.New(rand.NewPCG(14, 15))
	wantCount := map[string]int64{}
	wantTotal := map[string]float64{}
	produced := make(chan error, 1)
	gates := map[int]chan struct{}{orders / 3: make(chan struct{}), 2 * orders / 3: make(chan struct{})}
	go func() {
		for i := 0; i < orders; i++ {
			if g, ok := gates[i]; ok {
				select {
				case <-g: // a third more flows while an instance dies
				case <-ctx.Done():
					produced <- ctx.Err()
					return
				}
			}
			customer := fmt.Sprintf("customer-%03d", rng.IntN(customers))
			amount := float64(1 + rng.IntN(100)) // whole amounts keep the sums exact
			wantCount[customer]++
			wantTotal[customer] += amount
			value, _ := json.Marshal(map[string]any{"order_id": fmt.Sprintf("order-%05d", i), "amount": amount})
			cl.Produce(ctx, &kgo.Record{Topic: "orders", Key: []byte(customer), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case produced <- err:
					default:
					}
				}
			})
			if i%500 == 499 {
				time.Sleep(100 * time.Millisecond) // about 5,000 orders/s
			}
		}
		produced <- cl.Flush(ctx)
	}()

	// committed returns the group's committed offsets of orders partitions [from, from+3);
	// an offset still in an open transaction reads as unstable, and the call reports none.
	committed := func(from int32) map[int32]int64 {
		offsets, err := adm.FetchOffsets(ctx, "ordertotals")
		if err != nil {
			return nil
		}
		out := map[int32]int64{}
		for p := from; p < from+3; p++ {
			if o, ok := offsets.Lookup("orders", p); ok && o.Err == nil {
				out[p] = o.At
			}
		}
		return out
	}
	waitCommitted := func(what string, from int32, before map[int32]int64) {
		waitFor(t, ctx, what, func() bool {
			now := committed(from)
			for p := from; p < from+3; p++ {
				if now[p] <= before[p] {
					return false
				}
			}
			return true
		})
	}

	// Kill 1: instance 1 (partitions 3-5 under Range), mid-transaction, same state after.
	waitFor(t, ctx, "instance 1 to own partitions 3-5", func() bool {
		return strings.Contains(instances[1].log(), "orders:[3 4 5]")
	})
	before := committed(3)
	close(gates[orders/3])
	waitCommitted("instance 1 to commit orders produced after the first pause", 3, before)
	time.Sleep(250 * time.Millisecond) // half a commit interval: a transaction is open
	instances[1].kill()
	t.Logf("killed %s mid-transaction", instances[1].name)
	time.Sleep(time.Second)
	instances[1] = start(1)

	// Kill 2: instance 0 (partitions 0-2) as soon as a commit is seen, state wiped.
	waitFor(t, ctx, "instance 1 to take its partitions back", func() bool {
		return strings.Contains(instances[1].log(), "partitions assigned")
	})
	before = committed(0)
	close(gates[2*orders/3])
	waitCommitted("instance 0 to commit orders produced after the second pause", 0, before)
	instances[0].kill()
	t.Logf("killed %s right after a commit; wiping its state", instances[0].name)
	if err := os.RemoveAll(stateDir(0)); err != nil {
		t.Fatal(err)
	}
	instances[0] = start(0)
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}

	consumer := node.Client(t, kgo.ConsumeTopics("order-totals"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]totals{}
	waitFor(t, ctx, "order-totals to count every order", func() bool {
		pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		consumer.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			var v totals
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Errorf("order-totals %s offset %d: %q: %v", r.Key, r.Offset, r.Value, err)
				return
			}
			if prev, ok := got[string(r.Key)]; ok && v.Count <= prev.Count {
				t.Errorf("order-totals %s offset %d: count %d after %d: an order was counted twice", r.Key, r.Offset, v.Count, prev.Count)
			}
			got[string(r.Key)] = v
		})
		for c, n := range wantCount {
			if got[c].Count < n {
				return false
			}
		}
		return true
	})
	for c, n := range wantCount {
		if g := got[c]; g.Count != n || g.Total != wantTotal[c] {
			t.Errorf("%s: %+v, want count %d total %v", c, g, n, wantTotal[c])
		}
	}
	if len(got) != len(wantCount) {
		t.Errorf("order-totals has %d customers, want %d", len(got), len(wantCount))
	}
	restored := false
	for _, line := range strings.Split(instances[0].log(), "\n") {
		if strings.Contains(line, "stream: restored") {
			restored = true
			t.Logf("wiped restart: %s", line)
		}
	}
	if !restored {
		t.Errorf("instance 0 restarted on an empty state dir without restoring a changelog:\n%s", instances[0].log())
	}
	for _, line := range strings.Split(instances[1].log(), "\n") {
		if strings.Contains(line, "stream: restored") {
			t.Logf("same-state restart: %s", line)
		}
		// A crash between commits must not cost the local state (Kafka's EOS wipe,
		// apache/kafka#5421): the checkpoints never run ahead of the committed changelog.
		if strings.Contains(line, "rebuilding it") {
			t.Errorf("the restart on its own state wiped a store: %s", line)
		}
	}
	t.Logf("%d orders over %d customers: order-totals exact after two SIGKILLs (one with its state wiped)", orders, len(wantCount))
	for _, p := range instances {
		if err := p.stop(20 * time.Second); err != nil {
			t.Error(err)
		}
	}
}
