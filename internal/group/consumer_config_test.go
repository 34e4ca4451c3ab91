package group

import (
	"testing"
	"time"
)

// A group's own consumer.session.timeout.ms (group config resources, through
// Config.ConsumerGroupConfig) expires its members; other groups keep the default. The
// clock is fake: nothing here waits.
func TestConsumerGroupOwnSessionTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1700000000, 0)}
	own := func(groupID string) (time.Duration, time.Duration) {
		if groupID == "g" {
			return 3 * time.Second, time.Second
		}
		return 0, 0
	}
	c := newTestCoordinatorWith(t, fixedTopics{"t": 4}, clock, func(cfg *Config) { cfg.ConsumerGroupConfig = own })
	m := &simMember{id: "m1", topics: []string{"t"}}
	if r := m.heartbeat(t, c); r.ErrorCode != 0 || r.HeartbeatIntervalMillis != 1000 {
		t.Fatalf("join: code %d, heartbeat interval %d ms; want 0 and the group's own 1000", r.ErrorCode, r.HeartbeatIntervalMillis)
	}
	clock.Add(4 * time.Second) // past the group's 3 s, well inside the default 10 s
	c.mu.Lock()
	c.expireConsumersLocked(c.groups["g"], clock.Now())
	members := len(c.groups["g"].consumer.members)
	c.mu.Unlock()
	if members != 0 {
		t.Fatalf("4 s after its last heartbeat the member is still in the group (its own session timeout is 3 s)")
	}
}
