package group

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
)

// TestPartitionForMatchesKafka checks the placement against String.hashCode values
// printed by a JVM.
func TestPartitionForMatchesKafka(t *testing.T) {
	cases := []struct {
		group string
		hash  int32 // "...".hashCode() in Java
	}{
		{"hello", 99162322},
		{"my-group", -1906497762},
		{"", 0},
		{"ünïcödé-𝔊", 1204015437}, // UTF-16 units, including a surrogate pair
	}
	for _, c := range cases {
		want := (c.hash & 0x7fffffff) % 50
		if got := PartitionFor(c.group, 50); got != want {
			t.Errorf("PartitionFor(%q) = %d, want %d", c.group, got, want)
		}
	}
}

// journalLog adapts a real journal to OffsetsLog, as the broker does.
type journalLog struct{ l *journal.Log }

func (j journalLog) Append(ctx context.Context, batch []byte) (int64, error) {
	res, err := j.l.Append(ctx, batch, journal.AppendOptions{})
	return res.LastOffset, err
}
func (j journalLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	return j.l.ReadBytes(offset, maxBytes, j.l.LogEndOffset(), true)
}
func (j journalLog) LogStartOffset() int64 { return j.l.LogStartOffset() }
func (j journalLog) LogEndOffset() int64   { return j.l.LogEndOffset() }

type fixedTopics map[string]int32

func (f fixedTopics) PartitionCount(topic string) (int32, bool) { n, ok := f[topic]; return n, ok }
func (f fixedTopics) TopicID(topic string) ([16]byte, bool) {
	_, ok := f[topic]
	var id [16]byte
	copy(id[:], topic)
	return id, ok
}
func (f fixedTopics) TopicName(id [16]byte) (string, bool) {
	name := strings.TrimRight(string(id[:]), "\x00")
	_, ok := f[name]
	return name, ok
}
func (f fixedTopics) TopicNames() []string {
	var names []string
	for name := range f {
		names = append(names, name)
	}
	return names
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestOffsetsAndGroupsReplay commits offsets and forms a group, then a new coordinator
// replays the same partition and knows both; other groups' offsets are untouched by a
// delete.
func TestOffsetsAndGroupsReplay(t *testing.T) {
	ctx := context.Background()
	cfg := journal.DefaultConfig()
	cfg.Logger = quiet()
	dir := t.TempDir()
	l, err := journal.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	coordCfg := Config{NumPartitions: 1, MinSessionTimeout: time.Second, InitialRebalanceDelay: -1, Logger: quiet()}
	topics := fixedTopics{"t": 4}
	c := NewCoordinator(coordCfg, topics)
	if err := c.Load(ctx, 0, journalLog{l}); err != nil {
		t.Fatal(err)
	}
	commit := func(c *Coordinator, group string, partition int32, offset int64) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = group, -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, wait := c.Handle(ctx, req, Client{})
		if wait != nil {
			resp = wait(ctx)
		}
		return resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	for i, g := range []string{"a", "b", "c"} {
		if code := commit(c, g, int32(i), int64(10*(i+1))); code != 0 {
			t.Fatalf("commit %s: %d", g, code)
		}
	}
	if code := commit(c, "a", 9, 1); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("commit to a missing partition: %d", code)
	}
	// Delete group b: its offsets go, a's and c's stay.
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"b"}
	resp, wait := c.Handle(ctx, del, Client{})
	if wait != nil {
		resp = wait(ctx)
	}
	if code := resp.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode; code != 0 {
		t.Fatalf("delete: %d", code)
	}
	c.Close()

	replayed := NewCoordinator(coordCfg, topics)
	defer replayed.Close()
	if err := replayed.Load(ctx, 0, journalLog{l}); err != nil {
		t.Fatal(err)
	}
	got := replayed.CommittedOffsets()
	if got["a"]["t"][0] != 10 || got["c"]["t"][2] != 30 || len(got["b"]) != 0 || len(got) != 2 {
		t.Fatalf("replayed offsets %v", got)
	}
}

// TestOffsetRetention expires an offsets-only group's offsets by their commit time and
// keeps younger ones; the expiry survives a replay.
func TestOffsetRetention(t *testing.T) {
	ctx := context.Background()
	cfg := journal.DefaultConfig()
	cfg.Logger = quiet()
	l, err := journal.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.UnixMilli(1_000_000_000_000)
	clock := func() time.Time { return now }
	coordCfg := Config{NumPartitions: 1, OffsetsRetention: time.Hour, Now: clock, Logger: quiet()}
	c := NewCoordinator(coordCfg, fixedTopics{"t": 2})
	if err := c.Load(ctx, 0, journalLog{l}); err != nil {
		t.Fatal(err)
	}
	commit := func(partition int32) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = "old", -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, 7
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		_, wait := c.Handle(ctx, req, Client{})
		wait(ctx)
	}
	commit(0)
	now = now.Add(50 * time.Minute)
	commit(1)
	now = now.Add(20 * time.Minute) // partition 0's commit is 70 minutes old, partition 1's 20
	c.expireOffsets()
	c.Close() // waits for the tombstones to be written
	if got := c.CommittedOffsets()["old"]["t"]; len(got) != 1 || got[1] != 7 {
		t.Fatalf("after expiry %v", got)
	}
	replayed := NewCoordinator(coordCfg, fixedTopics{"t": 2})
	defer replayed.Close()
	if err := replayed.Load(ctx, 0, journalLog{l}); err != nil {
		t.Fatal(err)
	}
	if got := replayed.CommittedOffsets()["old"]["t"]; len(got) != 1 || got[1] != 7 {
		t.Fatalf("after replay %v", got)
	}
}
