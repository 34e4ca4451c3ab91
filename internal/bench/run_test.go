package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/broker"
)

// startBroker runs a Strand node in process on loopback ports and returns its Kafka address.
func startBroker(t *testing.T) string {
	t.Helper()
	kafka, _ := startBrokerHTTP(t)
	return kafka
}

// startBrokerHTTP is startBroker that also returns the node's HTTP address.
func startBrokerHTTP(t *testing.T) (kafka, http string) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker: %v", err)
		}
	})
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatalf("broker exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("broker not ready after 30s")
	}
	return b.KafkaAddr().String(), b.HTTPAddr().String()
}

func testConfig(addr, topic string) Config {
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.Partitions = []string{addr}, topic, 3
	cfg.RecordSize, cfg.Records, cfg.Linger = 100, 3000, time.Millisecond
	return cfg
}

func runBench(t *testing.T, mode Mode, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, mode, cfg)
	if err != nil {
		t.Fatalf("%s: %v", mode, err)
	}
	return res
}

func TestProduceThenConsumeCountsMatch(t *testing.T) {
	addr := startBroker(t)
	cfg := testConfig(addr, "counts")
	cfg.Producers, cfg.Consumers = 2, 2
	p := runBench(t, Produce, cfg)
	if p.Sent != cfg.Records || p.Acked != cfg.Records || p.Errors != 0 || p.Records != cfg.Records {
		t.Fatalf("produce: sent %d acked %d errors %d records %d, want %d each and no errors (%s)", p.Sent, p.Acked, p.Errors, p.Records, cfg.Records, p.FirstError)
	}
	if p.Bytes != cfg.Records*int64(cfg.RecordSize) || p.Partitions != 3 {
		t.Fatalf("produce: bytes %d partitions %d", p.Bytes, p.Partitions)
	}
	if p.Latency == nil || p.Latency.Count != cfg.Records || p.Latency.P50 <= 0 || p.Latency.P50 > p.Latency.P99 || p.Latency.P99 > p.Latency.Max {
		t.Fatalf("produce latency %+v: want one observation per record, ordered percentiles", p.Latency)
	}
	if p.RecordsPerSec <= 0 || p.MBPerSec <= 0 {
		t.Fatalf("produce rates %v records/s %v MB/s", p.RecordsPerSec, p.MBPerSec)
	}

	c := runBench(t, Consume, cfg)
	if c.Records != cfg.Records || c.Bytes != p.Bytes || c.Partitions != 3 {
		t.Fatalf("consume: %d records, %d bytes over %d partitions; want %d records, %d bytes, 3 partitions", c.Records, c.Bytes, c.Partitions, cfg.Records, p.Bytes)
	}

	// Part of the topic: exactly that many, though fetches bring more.
	part := cfg
	part.Records, part.Consumers = 1001, 1
	if c := runBench(t, Consume, part); c.Records != 1001 || c.Bytes != 1001*int64(cfg.RecordSize) {
		t.Fatalf("consume 1001: got %d records, %d bytes", c.Records, c.Bytes)
	}

	// Asking for more than the topic holds, with no time bound, is refused rather than hanging.
	cfg.Records = 2 * cfg.Records
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Run(ctx, Consume, cfg); err == nil || !strings.Contains(err.Error(), "fewer than --records") {
		t.Fatalf("consume beyond the log: err %v", err)
	}
}

func TestE2ELatencyCountsEveryRecord(t *testing.T) {
	addr := startBroker(t)
	cfg := testConfig(addr, "e2e")
	cfg.Rate = 5000 // 3000 records in about 0.6 s
	res := runBench(t, E2E, cfg)
	if res.Acked != cfg.Records || res.Records != cfg.Records || res.Errors != 0 {
		t.Fatalf("e2e: acked %d consumed %d errors %d, want %d (%s)", res.Acked, res.Records, res.Errors, cfg.Records, res.FirstError)
	}
	if res.Latency == nil || res.Latency.Count != cfg.Records || res.AckLatency == nil || res.AckLatency.Count != cfg.Records {
		t.Fatalf("e2e histograms %+v / %+v: want %d observations each", res.Latency, res.AckLatency, cfg.Records)
	}
	// Offered 5000/s for 3000 records: the run cannot be much faster than 0.6 s.
	if res.Seconds < 0.55 {
		t.Fatalf("e2e took %.3fs: --rate was not honoured", res.Seconds)
	}
	// A second run on the same topic sees only its own records.
	cfg.Rate, cfg.Records = 0, 500
	again := runBench(t, E2E, cfg)
	if again.Records != 500 || again.Latency.Count != 500 {
		t.Fatalf("second e2e run consumed %d records (%d latencies), want 500", again.Records, again.Latency.Count)
	}
}

func TestDurationBoundsARun(t *testing.T) {
	addr := startBroker(t)
	cfg := testConfig(addr, "timed")
	cfg.Records, cfg.Duration, cfg.Rate = 0, 300*time.Millisecond, 2000
	var progress bytes.Buffer
	cfg.Progress, cfg.ProgressInterval = &progress, 50*time.Millisecond
	res := runBench(t, Produce, cfg)
	if lines := strings.Count(progress.String(), " acked "); lines < 3 {
		t.Fatalf("%d progress lines in 300 ms at 50 ms intervals:\n%s", lines, progress.String())
	}
	// About 600 records are offered in 300 ms; all that were sent are acknowledged.
	if res.Sent < 400 || res.Sent > 800 || res.Acked != res.Sent || res.Errors != 0 {
		t.Fatalf("timed produce: sent %d acked %d errors %d; want about 600, all acknowledged", res.Sent, res.Acked, res.Errors)
	}
}

func TestResultOutput(t *testing.T) {
	res := &Result{Mode: E2E, Topic: "t", Partitions: 6, RecordSize: 1024, Records: 10, Bytes: 10240, Seconds: 1,
		RecordsPerSec: 10, BytesPerSec: 10240, MBPerSec: 0.01024,
		Latency: &Percentiles{Count: 10, P50: 1, P95: 2, P99: 3, P999: 4, Max: 5}, AckLatency: &Percentiles{Count: 10}}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, js.String())
	}
	lat, _ := back["latency"].(map[string]any)
	if back["records_per_sec"] != 10.0 || lat["p99_ms"] != 3.0 || lat["p99_9_ms"] != 4.0 {
		t.Fatalf("JSON fields: %s", js.String())
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"e2e latency", "ack latency", "p99.9 4.000", "10 records/s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode Mode
		edit func(*Config)
	}{
		{"unknown mode", "sideways", func(*Config) {}},
		{"no bound", Produce, func(c *Config) { c.Records, c.Duration = 0, 0 }},
		{"bad acks", Produce, func(c *Config) { c.Acks = "2" }},
		{"bad codec", E2E, func(c *Config) { c.Compression = "brotli" }},
		{"e2e value too small", E2E, func(c *Config) { c.RecordSize = 4 }},
		{"no producers", Produce, func(c *Config) { c.Producers = 0 }},
		{"negative rate", E2E, func(c *Config) { c.Rate = -1 }},
	} {
		cfg := DefaultConfig()
		tc.edit(&cfg)
		if err := cfg.validate(tc.mode); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	cfg := DefaultConfig()
	if err := cfg.validate(E2E); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}
