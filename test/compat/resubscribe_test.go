package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// errorLog keeps the client log lines at warn level and above.
type errorLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *errorLog) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l *errorLog) Log(level kgo.LogLevel, msg string, kv ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, " ", msg, " ", kv))
}

func (l *errorLog) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestConsumerGroupProtocolRapidResubscribe: two franz-go members of a KIP-848 group
// (ConsumerGroupHeartbeat, the broker assigns) change their subscription many times in a
// row — B, A+B, A, ... — a few heartbeats apart, while polling, and last drop both topics
// and take them back at once. The coordinator must never answer INVALID_REQUEST, and once
// the subscriptions stop changing the assignment must converge: every partition of A and
// B assigned to exactly one member, as the coordinator and the clients both see it, and
// read by it.
//
// A member that drops a topic and subscribes to it again before the coordinator revoked it
// has no fetch cursors for it; franz-go then sends full heartbeats until a response carries
// its assignment (pkg/kgo/consumer_group_848.go, "reassign"), as Kafka answers every full
// request (GroupMetadataManager.consumerGroupHeartbeat). Strand used to answer a full
// request without the assignment when nothing had changed, and the topic was never read
// again.
func TestConsumerGroupProtocolRapidResubscribe(t *testing.T) {
	node := harness.Start(t, harness.Options{Args: []string{
		"--broker-config", "group.consumer.heartbeat.interval.ms=200"}})
	ctx := harness.Context(t, 2*time.Minute)
	adm := kadm.NewClient(node.Client(t))
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, "rs-a", "rs-b"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	owned := map[int]map[string]bool{} // by member: "topic/partition" it was assigned and not revoked
	consumed := map[string]bool{}
	logs := &errorLog{}
	members := make([]*kgo.Client, 2)
	for i := range members {
		members[i] = node.Client(t, kgo.ConsumerGroup("resubscribe"), kgo.ConsumeTopics("rs-a"),
			kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()), kgo.WithLogger(logs),
			kgo.HeartbeatInterval(200*time.Millisecond), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if owned[i] == nil {
					owned[i] = map[string]bool{}
				}
				for topic, p := range ps {
					for _, p := range p {
						owned[i][fmt.Sprintf("%s/%d", topic, p)] = true
					}
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for topic, p := range ps {
					for _, p := range p {
						delete(owned[i], fmt.Sprintf("%s/%d", topic, p))
					}
				}
			}),
		)
	}
	stop := make(chan struct{})
	var polling sync.WaitGroup
	fatal := make(chan error, 16)
	for _, cl := range members {
		pollUntilStopped(ctx, &polling, stop, cl, 100*time.Millisecond, func(f kgo.Fetches) {
			f.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				consumed[string(r.Value)] = true
				mu.Unlock()
			})
			f.EachError(func(topic string, p int32, err error) {
				if !strings.Contains(err.Error(), "context deadline") {
					select {
					case fatal <- fmt.Errorf("%s/%d: %w", topic, p, err):
					default:
					}
				}
			})
		})
	}
	defer func() { close(stop); polling.Wait() }()

	subscriptions := [][]string{{"rs-b"}, {"rs-a", "rs-b"}, {"rs-a"}}
	current := []string{"rs-a"}
	for round := range 30 {
		next := subscriptions[round%len(subscriptions)]
		for _, cl := range members {
			var gone []string
			for _, topic := range current {
				if !slices.Contains(next, topic) {
					gone = append(gone, topic)
				}
			}
			cl.AddConsumeTopics(next...)
			cl.PurgeTopicsFromConsuming(gone...)
		}
		current = next
		time.Sleep(time.Duration(50+round%4*100) * time.Millisecond)
	}
	// Settle on A+B: each member drops both topics and takes them back at once, faster
	// than it heartbeats, so that the coordinator still assigns them what they re-add.
	// Then write a record to every partition: converged means the members read all six
	// (a member the coordinator assigns a partition but that does not fetch it has not
	// converged).
	for _, cl := range members {
		cl.AddConsumeTopics("rs-a", "rs-b")
	}
	time.Sleep(2 * time.Second)
	for _, cl := range members {
		cl.PurgeTopicsFromConsuming("rs-a", "rs-b")
		cl.AddConsumeTopics("rs-a", "rs-b")
	}
	prod := node.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var want []string
	for _, topic := range []string{"rs-a", "rs-b"} {
		for p := range int32(3) {
			v := fmt.Sprintf("settled %s/%d", topic, p)
			want = append(want, v)
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	converged := false
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for !converged && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		d, err := adm.DescribeConsumerGroups(ctx, "resubscribe")
		if err != nil {
			last = err.Error()
			continue
		}
		g := d["resubscribe"]
		seen := map[string]int{}
		for _, m := range g.Members {
			for topic, ps := range m.Assignment {
				for p := range ps {
					seen[fmt.Sprintf("%s/%d", topic, p)]++
				}
			}
		}
		mu.Lock()
		var unread []string
		for _, v := range want {
			if !consumed[v] {
				unread = append(unread, v)
			}
		}
		clientSeen := map[string]int{}
		for _, o := range owned {
			for tp := range o {
				clientSeen[tp]++
			}
		}
		mu.Unlock()
		last = fmt.Sprintf("state %s, epoch %d, %d members, coordinator's assignment %v, clients own %v, records not read %v", g.State, g.Epoch, len(g.Members), seen, clientSeen, unread)
		converged = len(g.Members) == 2 && len(seen) == 6 && len(clientSeen) == 6 && len(unread) == 0
		for k, n := range seen {
			converged = converged && n == 1 && clientSeen[k] == 1
		}
	}
	if invalid := logs.matching("INVALID_REQUEST"); len(invalid) > 0 {
		t.Errorf("the coordinator answered INVALID_REQUEST %d times, first: %s", len(invalid), invalid[0])
	}
	select {
	case err := <-fatal:
		t.Errorf("a member's poll returned %v", err)
	default:
	}
	if !converged {
		t.Fatalf("the assignment did not converge within 30 s of the last resubscribe: %s\nclient warnings: %v", last, logs.matching(""))
	}
	t.Logf("converged after 30 resubscribes: %s; client warnings: %d", last, len(logs.matching("")))
	for _, l := range logs.matching("") {
		t.Log(l)
	}
}
