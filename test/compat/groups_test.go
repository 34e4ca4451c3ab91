package compat

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// produceN writes n records "0".."n-1" spread over a topic's partitions.
func produceN(t *testing.T, node *harness.Node, topic string, partitions int32, n int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Uncompressed: Debian's kafka-python has no snappy library, franz-go's default codec.
	cl := node.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// committedSum is the sum of a group's committed offsets on a topic.
func committedSum(t *testing.T, node *harness.Node, group string) int64 {
	t.Helper()
	offs, err := kadm.NewClient(node.Client(t)).FetchOffsets(harness.Context(t, time.Minute), group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	return sum
}

func TestKcatBalancedConsumer(t *testing.T) {
	kcat := need(t, "kcat")
	node := harness.Start(t, harness.Options{})
	produceN(t, node, "kg", 4, 400)
	out := run(t, "", kcat, "-b", node.KafkaAddr, "-G", "kcat-group", "kg", "-o", "beginning", "-e", "-q", "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100")
	lines := strings.Fields(out)
	if len(lines) != 400 {
		t.Fatalf("kcat -G read %d records, want 400", len(lines))
	}
	t.Logf("kcat -G: %d records in a balanced consumer group", len(lines))
}

func TestPythonGroups(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	for _, client := range []string{"kafka-python", "confluent-kafka"} {
		t.Run(client, func(t *testing.T) {
			module := map[string]string{"kafka-python": "kafka", "confluent-kafka": "confluent_kafka"}[client]
			if err := exec.Command(python, "-c", "import "+module).Run(); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s is not installed for %s", client, python)
				}
				t.Skipf("%s is not installed for %s", client, python)
			}
			node := harness.Start(t, harness.Options{})
			produceN(t, node, "pg", 3, 600)
			group := client + "-group"
			out := run(t, "", python, filepath.Join("testdata", "python_groups.py"), node.KafkaAddr, client, "pg", group, "600")
			if sum := committedSum(t, node, group); sum != 600 {
				t.Fatalf("%s committed offsets add up to %d, want 600", client, sum)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

// TestLibrdkafkaCooperativeSticky: when a second librdkafka consumer joins with
// cooperative-sticky, the first gives up only the partitions that move.
func TestLibrdkafkaCooperativeSticky(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	if err := exec.Command(python, "-c", "import confluent_kafka").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("confluent-kafka is not installed for %s", python)
		}
		t.Skipf("confluent-kafka is not installed for %s", python)
	}
	node := harness.Start(t, harness.Options{})
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(harness.Context(t, time.Minute), 6, 1, nil, "coop"); err != nil {
		t.Fatal(err)
	}
	out := run(t, "", python, filepath.Join("testdata", "librdkafka_cooperative.py"), node.KafkaAddr, "coop", "coop-group")
	t.Logf("%s", strings.TrimSpace(out))
}

// TestLibrdkafkaEagerRevokeCommit: librdkafka consumers with the eager range assignor
// commit synchronously in on_revoke while members join and leave cleanly and records keep
// arriving (testdata/librdkafka_eager_revoke.py); no record may be processed twice. Every
// eager rebalance revokes all partitions, so the revoke commits come while the group is
// PreparingRebalance, where Kafka takes them and Strand used to refuse them.
func TestLibrdkafkaEagerRevokeCommit(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	needPythonClient(t, python, "confluent-kafka")
	node := harness.Start(t, harness.Options{})
	if _, err := kadm.NewClient(node.Client(t)).CreateTopic(harness.Context(t, time.Minute), 6, 1, nil, "eager"); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(run(t, "", python, filepath.Join("testdata", "librdkafka_eager_revoke.py"), node.KafkaAddr, "eager", "eager-group", "40000"))
	t.Logf("%s", out)
	if name := os.Getenv("STRAND_FIGURES"); name != "" {
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "\n%s\n", out)
			f.Close()
		}
	}
}
