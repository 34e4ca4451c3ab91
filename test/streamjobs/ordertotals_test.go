package streamjobs

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

type totals struct {
	Count int64   `json:"count"`
	Total float64 `json:"total"`
}

// TestOrderTotalsSurvivesKill runs two ordertotals instances against a real strand, feeds
// them 20,000 orders over 500 customers, kills one with SIGKILL while orders flow and
// restarts it with the same state directory. The final order-totals table must equal the
// one computed from the orders, except that at-least-once may count a replayed order twice:
// a key's count may exceed the truth only together with its total, by whole replayed
// orders. The test reports how many replays there were. With the aggregations' write cache
// a replay shows only when the kill lands between a commit's flush and its offset commit:
// work done since the last commit has not been written anywhere yet.
func TestOrderTotalsSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strand and two job processes")
	}
	const (
		orders    = 20000
		customers = 500
	)
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 90*time.Second)
	bin := exampleBinary(t, "ordertotals")
	stateRoot := t.TempDir()
	start := func(i int) *proc {
		return startProc(t, fmt.Sprintf("ordertotals-%d", i), bin,
			"--brokers", node.KafkaAddr, "--state-dir", filepath.Join(stateRoot, fmt.Sprint(i)),
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

	// Whole amounts keep the sums exact in float64.
	rng := rand.New(rand.NewPCG(14, 14))
	wantCount := map[string]int64{}
	wantTotal := map[string]float64{}
	produced := make(chan error, 1)
	resume := make(chan struct{})
	go func() {
		for i := 0; i < orders; i++ {
			if i == orders/3 {
				<-resume // the first third is in; the rest flows while an instance dies
			}
			customer := fmt.Sprintf("customer-%03d", rng.IntN(customers))
			amount := float64(1 + rng.IntN(100))
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
				time.Sleep(100 * time.Millisecond) // about 5,000 orders/s: orders flow through the kill
			}
		}
		produced <- cl.Flush(ctx)
	}()

	// Kill instance 1 once it owns its partitions (Range gives instance-1 the upper half)
	// and has committed some of the orders that flow after the pause, so that it has local
	// state and committed offsets to come back to, and records in flight when it dies.
	waitFor(t, ctx, "instance 1 to own partitions 3-5", func() bool {
		return strings.Contains(instances[1].log(), "orders:[3 4 5]")
	})
	committed := func() map[int32]int64 {
		offsets, err := adm.FetchOffsets(ctx, "ordertotals")
		if err != nil {
			return nil
		}
		out := map[int32]int64{}
		for p := int32(3); p < 6; p++ {
			if o, ok := offsets.Lookup("orders", p); ok {
				out[p] = o.At
			}
		}
		return out
	}
	before := committed()
	close(resume)
	waitFor(t, ctx, "instance 1 to commit orders produced after the pause", func() bool {
		now := committed()
		for p := int32(3); p < 6; p++ {
			if now[p] <= before[p] {
				return false
			}
		}
		return true
	})
	time.Sleep(250 * time.Millisecond) // half a commit interval: the kill lands between commits
	instances[1].kill()
	t.Logf("killed %s while orders flow", instances[1].name)
	time.Sleep(time.Second) // the dead instance's partitions sit idle, as after a crash
	instances[1] = start(1)
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}

	got := map[string]totals{}
	consumer := node.Client(t, kgo.ConsumeTopics("order-totals"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var replays int64
	waitFor(t, ctx, "order-totals to count every order", func() bool {
		pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		consumer.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			var v totals
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Errorf("order-totals %s offset %d: %q: %v", r.Key, r.Offset, r.Value, err)
				return
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

	var keysReplayed int
	for c, n := range wantCount {
		g := got[c]
		extra := g.Count - n
		replays += extra
		if extra > 0 {
			keysReplayed++
		}
		// A replayed order adds between 1 and 100 again; without replays the total is exact.
		if extra == 0 && g.Total != wantTotal[c] {
			t.Errorf("%s: total %v, want %v (count %d is exact)", c, g.Total, wantTotal[c], n)
		}
		if extra > 0 && (g.Total-wantTotal[c] < float64(extra) || g.Total-wantTotal[c] > 100*float64(extra)) {
			t.Errorf("%s: %d replayed orders but total %v vs %v", c, extra, g.Total, wantTotal[c])
		}
	}
	if len(got) != len(wantCount) {
		t.Errorf("order-totals has %d customers, want %d", len(got), len(wantCount))
	}
	t.Logf("%d orders over %d customers: %d replayed orders (%.2f%%) on %d customers after one SIGKILL",
		orders, len(wantCount), replays, 100*float64(replays)/orders, keysReplayed)
	if !strings.Contains(instances[1].log(), "partitions assigned") {
		t.Errorf("the restarted instance never got partitions:\n%s", instances[1].log())
	}
	restores := 0
	for _, line := range strings.Split(instances[1].log(), "\n") {
		if strings.Contains(line, "stream: restored") {
			restores++
			t.Logf("restart: %s", line)
		}
	}
	if restores == 0 {
		t.Logf("restart: the local state was current (its checkpoints matched the changelog ends): nothing to restore")
	}
	for _, p := range instances {
		if err := p.stop(20 * time.Second); err != nil {
			t.Error(err)
		}
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
