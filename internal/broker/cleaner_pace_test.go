package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// With the default pacing (log.cleaner.backoff.ms 15 s, as Kafka's), a compacted partition
// that turns dirty is cleaned within 20 s: the cleaner no longer waits for the retention
// check (5 min). The loop polls and is bounded; it measures no speed.
func TestCleanerDefaultPaceCleansWithin20s(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to 20 s for the default cleaner backoff")
	}
	b, _ := startBroker(t, t.TempDir())
	if b.cfg.CleanerBackoff != 15*time.Second || b.cfg.RetentionCheckInterval != 5*time.Minute {
		t.Fatalf("defaults: cleaner backoff %v, retention check %v; want Kafka's 15s and 5m", b.cfg.CleanerBackoff, b.cfg.RetentionCheckInterval)
	}
	cl := client(t, b, kgo.ProducerBatchMaxBytes(4096))
	createTopic(t, cl, "dirty", 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "16384"})
	const updates, keys = 6000, 20
	ctx := testContext(t)
	for i := 0; i < updates; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "dirty", Key: []byte(fmt.Sprintf("k%02d", i%keys)), Value: []byte(fmt.Sprintf("v%d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := b.partition("dirty", 0)
	if records, _ := closedRecords(t, p.Log()); records <= keys {
		t.Fatalf("closed segments hold %d records before any cleaning; the test needs more than %d", records, keys)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		records, _ := closedRecords(t, p.Log())
		if records <= keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the partition turned dirty its closed segments still hold %d records for %d keys", records, keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The two Kafka configs reach the node as static broker configs (serve --broker-config),
// win over the Config fields, and DescribeConfigs reports what the node runs with.
func TestMaintenanceIntervalConfigs(t *testing.T) {
	b, err := New(Config{DataDir: t.TempDir(), StaticConfigs: map[string]string{"log.cleaner.backoff.ms": "250"},
		RetentionCheckInterval: 90 * time.Second, CleanerBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.CleanerBackoff != 250*time.Millisecond || b.cfg.RetentionCheckInterval != 90*time.Second {
		t.Fatalf("cleaner backoff %v, retention check %v; want 250ms (static config) and 90s (field)", b.cfg.CleanerBackoff, b.cfg.RetentionCheckInterval)
	}
	if _, err := New(Config{DataDir: t.TempDir(), StaticConfigs: map[string]string{"log.cleaner.backoff.ms": "soon"}}); err == nil {
		t.Fatal("log.cleaner.backoff.ms=soon accepted")
	}

	b, _ = startBrokerWith(t, t.TempDir(), func(c *Config) { c.RetentionCheckInterval = 90 * time.Second })
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeBroker, "1"
	r.ConfigNames = []string{"log.retention.check.interval.ms", "log.cleaner.backoff.ms"}
	req.Resources = append(req.Resources, r)
	resp := request[*kmsg.DescribeConfigsResponse](t, client(t, b), req)
	got := map[string]string{}
	for _, c := range resp.Resources[0].Configs {
		got[c.Name] = fmt.Sprintf("%s/%v", *c.Value, c.Source)
	}
	want := map[string]string{"log.retention.check.interval.ms": "90000/STATIC_BROKER_CONFIG", "log.cleaner.backoff.ms": "15000/DEFAULT_CONFIG"}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %s, want %s", name, got[name], w)
		}
	}
}
