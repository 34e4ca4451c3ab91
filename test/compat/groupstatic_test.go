package compat

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestStaticMemberRestart (KIP-345) with franz-go: a member with group.instance.id closes
// (static members send no LeaveGroup) and a new process with the same instance id takes
// its place within the session timeout: it gets the same partitions back and the other
// member sees no rebalance at all.
func TestStaticMemberRestart(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 2*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "static"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	assigned := map[string]map[int32]bool{} // by instance id
	events := map[string]int{}              // assignment changes seen, by instance id
	member := func(instance string) *kgo.Client {
		track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if assigned[instance] == nil {
					assigned[instance] = map[int32]bool{}
				}
				for _, p := range ps["static"] {
					if add {
						assigned[instance][p] = true
					} else {
						delete(assigned[instance], p)
					}
					events[instance]++
				}
			}
		}
		cl := node.Client(t, kgo.ConsumerGroup("statics"), kgo.ConsumeTopics("static"), kgo.InstanceID(instance),
			kgo.SessionTimeout(20*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)), kgo.OnPartitionsLost(track(false)))
		go func() {
			for {
				if f := cl.PollFetches(ctx); f.IsClientClosed() || ctx.Err() != nil {
					return
				}
			}
		}()
		return cl
	}
	snapshot := func(instance string) (map[int32]bool, int) {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(assigned[instance]), events[instance]
	}
	a, b := member("a"), member("b")
	waitFor(t, 30*time.Second, func() bool {
		pa, _ := snapshot("a")
		pb, _ := snapshot("b")
		return len(pa)+len(pb) == 6 && len(pa) > 0 && len(pb) > 0
	})
	hadA, _ := snapshot("a")
	hadB, eventsB := snapshot("b")
	members := func() []string {
		d, err := adm.DescribeGroups(ctx, "statics")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range d["statics"].Members {
			ids = append(ids, fmt.Sprint(*m.InstanceID, "=", m.MemberID))
		}
		return ids
	}
	before := members()
	_, genBefore := b.GroupMetadata()

	a.Close()
	mu.Lock()
	delete(assigned, "a")
	mu.Unlock()
	start := time.Now()
	member("a")
	waitFor(t, 15*time.Second, func() bool { pa, _ := snapshot("a"); return len(pa) == len(hadA) })
	took := time.Since(start)
	nowA, _ := snapshot("a")
	nowB, eventsBNow := snapshot("b")
	if !maps.Equal(nowA, hadA) {
		t.Errorf("the restarted static member got %v, had %v", nowA, hadA)
	}
	if !maps.Equal(nowB, hadB) || eventsBNow != eventsB {
		t.Errorf("the other member saw a rebalance: partitions %v -> %v, %d assignment events", hadB, nowB, eventsBNow-eventsB)
	}
	if _, gen := b.GroupMetadata(); gen != genBefore {
		t.Errorf("generation moved from %d to %d: the group rebalanced", genBefore, gen)
	}
	after := members()
	if len(after) != 2 || fmt.Sprint(after) == fmt.Sprint(before) {
		t.Errorf("members before %v, after %v: want two, with a's member id replaced", before, after)
	}
	t.Logf("static member back with its %d partitions in %v, session timeout 20s; members %v -> %v", len(nowA), took.Round(time.Millisecond), before, after)
}
