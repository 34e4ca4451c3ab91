package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

func openNode(t *testing.T, dir string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Open(ctx, Config{NodeID: 1, DataDir: dir, KafkaAddr: "127.0.0.1:9092", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

func TestTopicLifecycleAndErrors(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "1000"}}, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec TopicSpec
		want error
	}{
		{"exists", TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: 1}, ErrTopicExists},
		{"bad name", TopicSpec{Name: "a/b", Partitions: 1, ReplicationFactor: 1}, ErrInvalidTopic},
		{"dot", TopicSpec{Name: "..", Partitions: 1, ReplicationFactor: 1}, ErrInvalidTopic},
		{"zero partitions", TopicSpec{Name: "x", Partitions: 0, ReplicationFactor: 1}, ErrInvalidPartitions},
		{"rf too big", TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 3}, ErrInvalidReplicationFactor},
		{"unknown config", TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"nope": "1"}}, ErrInvalidConfig},
		{"bad value", TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "sometimes"}}, ErrInvalidConfig},
	}
	for _, c := range cases {
		if _, err := n.CreateTopic(ctx, c.spec, false); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := n.CreateTopic(ctx, TopicSpec{Name: "dry", Partitions: 1, ReplicationFactor: 1}, true); err != nil {
		t.Fatal(err)
	}
	s := n.State()
	if _, ok := s.Topics["dry"]; ok {
		t.Fatal("validateOnly created the topic")
	}
	orders := s.Topics["orders"]
	if len(orders.Partitions) != 3 || orders.Partitions[2].Leader != 1 || orders.ID == [16]byte{} {
		t.Fatalf("topic %+v", orders)
	}
	if v, src, _ := s.TopicConfig("orders", "retention.ms"); v != "1000" || src != SourceDynamicTopic {
		t.Fatalf("retention.ms %s from %d", v, src)
	}
	if v, src, _ := s.TopicConfig("orders", "segment.bytes"); v != "1073741824" || src != SourceDefault {
		t.Fatalf("segment.bytes %s from %d", v, src)
	}
	if err := n.CreatePartitions(ctx, "orders", 2, nil, false); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrinking partitions: %v", err)
	}
	if err := n.CreatePartitions(ctx, "orders", 5, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := n.AlterTopicConfigs(ctx, "orders", []ConfigOp{{Name: "cleanup.policy", Op: OpAppend, Value: "compact"}, {Name: "retention.ms", Op: OpDelete}}, false); err != nil {
		t.Fatal(err)
	}
	if err := n.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "log.retention.ms", Op: OpSet, Value: "5000"}}, false); err != nil {
		t.Fatal(err)
	}
	s = n.State()
	if v, _, _ := s.TopicConfig("orders", "cleanup.policy"); v != "delete,compact" {
		t.Fatalf("cleanup.policy %q", v)
	}
	if v, src, _ := s.TopicConfig("orders", "retention.ms"); v != "5000" || src != SourceDynamicDefaultBroker {
		t.Fatalf("retention.ms after broker change %s from %d", v, src)
	}
	if err := n.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteTopic(ctx, "orders"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestMetadataSurvivesRestartAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := n.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	first, err := n.AllocateProducerIDs(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// More changes after the snapshot are replayed from the log.
	if err := n.ReplaceTopicConfigs(ctx, "b", map[string]string{"max.message.bytes": "2000"}, false); err != nil {
		t.Fatal(err)
	}
	before := n.State()
	n.Close()

	n = openNode(t, dir)
	defer n.Close()
	after := n.State()
	if after.ClusterID == "" || after.ClusterID != before.ClusterID {
		t.Fatalf("cluster id %q then %q", before.ClusterID, after.ClusterID)
	}
	if !reflect.DeepEqual(before.Topics, after.Topics) {
		t.Fatalf("topics differ after restart:\n%+v\n%+v", before.Topics, after.Topics)
	}
	next, err := n.AllocateProducerIDs(ctx, 1000)
	if err != nil || next != first+1000 {
		t.Fatalf("producer ids after restart start at %d (%v), want %d", next, err, first+1000)
	}
}

func TestConcurrentReadersSeeWholeStates(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-n.Changes():
				for _, topic := range n.State().Topics {
					if len(topic.Partitions) != 4 {
						t.Errorf("topic %s seen with %d partitions", topic.Name, len(topic.Partitions))
					}
				}
			}
		}
	}()
	for i := 0; i < 20; i++ {
		if _, err := n.CreateTopic(ctx, TopicSpec{Name: "t" + string(rune('a'+i)), Partitions: 4, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestParseVoters(t *testing.T) {
	v, err := ParseVoters("1@127.0.0.1:9093, 2@127.0.0.2:9093")
	if err != nil || len(v) != 2 || v[1] != (Voter{ID: 2, Addr: "127.0.0.2:9093"}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"x@127.0.0.1:1", "1@", "1@nohost", "1"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEveryConfigDefIsFound(t *testing.T) {
	for _, d := range TopicConfigDefs() {
		if got, ok := TopicConfigDef(d.Name); !ok || got.Name != d.Name {
			t.Errorf("topic config %s not found by name", d.Name)
		}
		if d.Validate != nil && d.Validate(d.Default) != nil {
			t.Errorf("topic config %s: default %q fails its own validation", d.Name, d.Default)
		}
	}
	for _, d := range BrokerConfigDefs() {
		if _, ok := BrokerConfigDef(d.Name); !ok {
			t.Errorf("broker config %s not found by name", d.Name)
		}
		if d.Validate != nil && d.Validate(d.Default) != nil {
			t.Errorf("broker config %s: default %q fails its own validation", d.Name, d.Default)
		}
	}
}
