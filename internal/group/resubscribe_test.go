package group

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lazyMember is a KIP-848 client that heartbeats the way franz-go's does
// (pkg/kgo/consumer_group_848.go): a full request (rebalance timeout, subscription, owned
// partitions) only when its subscription or what it owns changed since the last one, a
// keepalive with those fields null otherwise. Its user changes the subscription between
// heartbeats; a topic it unsubscribes it stops fetching at once but keeps reporting as
// owned until the coordinator revokes it. If the topic is subscribed again before that,
// it must be handed to it again: the member sends full requests until a response carries
// its assignment (franz-go's "reassign": only a new assignment creates the topic's
// fetch cursors).
type lazyMember struct {
	id                string
	epoch             int32
	subscribed        []string // what the user asked for
	owned             partitions
	notFetching       map[string]bool // owned topics without fetch cursors
	sentSubs          []string
	sentOwned         partitions
	sentOnce          bool
	fullWithoutAnswer int // full requests in a row answered without an assignment
}

func (m *lazyMember) subscribe(topics []string) {
	for t := range m.owned {
		if !slices.Contains(topics, t) {
			m.notFetching[t] = true // purged: stops fetching, still owned
		}
	}
	m.subscribed = slices.Clone(topics)
}

func (m *lazyMember) heartbeat(t *testing.T, c *Coordinator) {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.MemberEpoch = "g", m.id, m.epoch
	req.RebalanceTimeoutMillis = -1
	reassign := false
	for t := range m.notFetching {
		reassign = reassign || slices.Contains(m.subscribed, t)
	}
	full := !m.sentOnce || m.epoch == 0 || !slices.Equal(m.sentSubs, m.subscribed) || !m.sentOwned.equal(m.owned) || reassign
	if full {
		req.RebalanceTimeoutMillis = 60000
		req.SubscribedTopicNames = slices.Clone(m.subscribed)
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if m.epoch != 0 {
			for _, topic := range sortedKeys(m.owned) {
				rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
				rt.TopicID, _ = fixedTopics{topic: 1}.TopicID(topic)
				rt.Partitions = slices.Clone(m.owned[topic])
				req.Topics = append(req.Topics, rt)
			}
		}
		m.sentSubs, m.sentOwned, m.sentOnce = slices.Clone(m.subscribed), m.owned.union(nil), true
	}
	resp, _ := c.Handle(context.Background(), req, Client{ID: "lazy", Host: "/127.0.0.1"})
	r := resp.(*kmsg.ConsumerGroupHeartbeatResponse)
	if r.ErrorCode != 0 {
		t.Fatalf("member %s heartbeat (epoch %d, full %v): %v %s", m.id, m.epoch, full, kerr.ErrorForCode(r.ErrorCode), deref(r.ErrorMessage))
	}
	m.epoch = r.MemberEpoch
	if r.Assignment == nil {
		if full {
			m.fullWithoutAnswer++
		}
		return
	}
	m.fullWithoutAnswer = 0
	m.owned = partitions{}
	for _, at := range r.Assignment.Topics {
		name := string(at.TopicID[:len(trimZeros(at.TopicID[:]))])
		m.owned[name] = slices.Clone(at.Partitions)
	}
	m.notFetching = map[string]bool{}
	for t := range m.owned {
		if !slices.Contains(m.subscribed, t) {
			m.notFetching[t] = true
		}
	}
}

// fetching is what the member reads: what it owns and has cursors for.
func (m *lazyMember) fetching() partitions {
	out := partitions{}
	for t, ps := range m.owned {
		if !m.notFetching[t] {
			out[t] = ps
		}
	}
	return out
}

// TestConsumerGroupRapidResubscribe: two members change their subscriptions among {a},
// {b} and {a,b} fifty times, a few heartbeats apart and sometimes between two heartbeats;
// then each drops a topic it owns and takes it back between two heartbeats, and both
// settle on {a,b}. Every heartbeat must succeed, and within 20 rounds of
// heartbeats each partition of a and b must be fetched by exactly one member. A
// coordinator that answers a full request without the assignment when nothing changed
// leaves a member that unsubscribed and resubscribed a topic between two heartbeats
// without fetch cursors for it for good.
func TestConsumerGroupRapidResubscribe(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"a": 3, "b": 3}, clock)
	members := []*lazyMember{
		{id: "m1", subscribed: []string{"a", "b"}, owned: partitions{}, notFetching: map[string]bool{}},
		{id: "m2", subscribed: []string{"a", "b"}, owned: partitions{}, notFetching: map[string]bool{}},
	}
	sets := [][]string{{"a"}, {"b"}, {"a", "b"}}
	rng := rand.New(rand.NewSource(1))
	for _, m := range members {
		m.heartbeat(t, c)
	}
	for change := 0; change < 50; change++ {
		m := members[rng.Intn(len(members))]
		m.subscribe(sets[rng.Intn(len(sets))])
		for range rng.Intn(3) { // 0, 1 or 2 heartbeat rounds until the next change
			for _, o := range members {
				o.heartbeat(t, c)
			}
		}
	}
	// The last changes come between two heartbeats: each member drops a topic it owns and
	// takes it back at once.
	for _, m := range members {
		if _, ok := m.owned["a"]; ok {
			m.subscribe([]string{"b"})
		} else {
			m.subscribe([]string{"a"})
		}
		m.subscribe([]string{"a", "b"})
	}
	var state string
	for round := 0; round < 20; round++ {
		for _, m := range members {
			m.heartbeat(t, c)
		}
		fetched := map[string]int{}
		for _, m := range members {
			for topic, ps := range m.fetching() {
				for _, p := range ps {
					fetched[fmt.Sprintf("%s/%d", topic, p)]++
				}
			}
		}
		state = fmt.Sprintf("fetched %v; m1 owns %v (not fetching %v), m2 owns %v (not fetching %v)",
			fetched, members[0].owned, members[0].notFetching, members[1].owned, members[1].notFetching)
		converged := len(fetched) == 6
		for _, n := range fetched {
			converged = converged && n == 1
		}
		if converged {
			t.Logf("converged %d rounds after the last change: %s", round+1, state)
			return
		}
	}
	t.Fatalf("not converged 20 heartbeat rounds after the last change: %s; full requests answered without an assignment in a row: m1 %d, m2 %d",
		state, members[0].fullWithoutAnswer, members[1].fullWithoutAnswer)
}

// TestConsumerGroupFullRequestGetsAssignment: Kafka answers every full heartbeat with the
// member's assignment, also when it did not change.
func TestConsumerGroupFullRequestGetsAssignment(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	c := newTestCoordinator(t, fixedTopics{"t": 2}, clock)
	a := &simMember{id: "a", topics: []string{"t"}}
	settle(t, c, []*simMember{a})
	if r := a.heartbeat(t, c); r.ErrorCode != 0 || r.Assignment == nil {
		t.Fatalf("full heartbeat of a settled member: error %v, assignment %v; want the assignment", kerr.ErrorForCode(r.ErrorCode), r.Assignment)
	}
	keepalive := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	keepalive.Version = 1
	keepalive.Group, keepalive.MemberID, keepalive.MemberEpoch, keepalive.RebalanceTimeoutMillis = "g", "a", a.epoch, -1
	resp, _ := c.Handle(context.Background(), keepalive, Client{})
	if r := resp.(*kmsg.ConsumerGroupHeartbeatResponse); r.ErrorCode != 0 || r.Assignment != nil {
		t.Fatalf("keepalive of a settled member: error %v, assignment %v; want neither", kerr.ErrorForCode(r.ErrorCode), r.Assignment)
	}
}
