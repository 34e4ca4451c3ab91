package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Mode is the workload to run.
type Mode string

// The workloads.
const (
	Produce Mode = "produce" // producers only; latency is send to acknowledgement
	Consume Mode = "consume" // consumers only, reading from the start of the topic
	E2E     Mode = "e2e"     // both at once; latency is record timestamp to consumption
)

// Config describes one workload. DefaultConfig gives the defaults; the CLI's flags fill it.
type Config struct {
	Brokers           []string
	Topic             string
	Partitions        int32 // used when the topic has to be created
	ReplicationFactor int16 // used when the topic has to be created
	RecordSize        int   // value bytes per record
	// Records bounds the run by count (records produced, or consumed for Consume); Duration
	// bounds it by time. With both, whichever comes first ends the run; at least one is set.
	Records  int64
	Duration time.Duration

	Producers   int // clients producing concurrently
	Consumers   int // clients consuming concurrently (partitions split between them)
	Acks        string
	Compression string
	Linger      time.Duration
	BatchBytes  int32
	// Rate is the offered load in records per second across all producers; 0 sends as fast
	// as the producers accept.
	Rate float64
	// TxnRecords, when above 0, makes every producer transactional: it commits a
	// transaction after every TxnRecords records it sends.
	TxnRecords int
	// ReadCommitted makes the consumers read with isolation.level=read_committed.
	ReadCommitted bool

	// Progress receives a line every ProgressInterval while the workload runs; nil for none.
	Progress         io.Writer
	ProgressInterval time.Duration

	// ClientOpts are added to every client (tests use this for a short metadata age).
	ClientOpts []kgo.Opt

	// MetricsAddrs are the brokers' HTTP addresses: an E2E run reads their latency
	// histograms before and after, for the server's part of the breakdown.
	MetricsAddrs []string
}

// DefaultConfig is the configuration used when nothing is set: one producer and one
// consumer, 1 KiB records, a million of them, into a 6-partition topic with acks=all.
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{"127.0.0.1:9092"},
		Topic:             "strand-bench",
		Partitions:        6,
		ReplicationFactor: 1,
		RecordSize:        1024,
		Records:           1_000_000,
		Producers:         1,
		Consumers:         1,
		Acks:              "all",
		Compression:       "none",
		Linger:            5 * time.Millisecond,
		BatchBytes:        1 << 20,
		ProgressInterval:  time.Second,
	}
}

// validate checks the configuration for the mode.
func (c *Config) validate(mode Mode) error {
	switch mode {
	case Produce, Consume, E2E:
	default:
		return fmt.Errorf("unknown workload %q: want produce, consume or e2e", mode)
	}
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("no brokers")
	case c.Topic == "":
		return fmt.Errorf("no topic")
	case c.Records <= 0 && c.Duration <= 0:
		return fmt.Errorf("set --records or --duration")
	case c.Records < 0 || c.Duration < 0:
		return fmt.Errorf("--records and --duration must not be negative")
	case mode != Consume && c.RecordSize < 0:
		return fmt.Errorf("--record-size must not be negative")
	case mode == E2E && c.RecordSize < stampSize:
		return fmt.Errorf("--record-size must be at least %d for e2e (the send time travels in the value)", stampSize)
	case mode != Consume && c.Producers < 1:
		return fmt.Errorf("--producers must be at least 1")
	case mode != Produce && c.Consumers < 1:
		return fmt.Errorf("--consumers must be at least 1")
	case c.Partitions < 1:
		return fmt.Errorf("--partitions must be at least 1")
	case c.ReplicationFactor < 1:
		return fmt.Errorf("--replication-factor must be at least 1")
	case c.Rate < 0:
		return fmt.Errorf("--rate must not be negative")
	case c.BatchBytes < 512:
		return fmt.Errorf("--batch-bytes must be at least 512")
	case c.Linger < 0:
		return fmt.Errorf("--linger must not be negative")
	case c.TxnRecords < 0:
		return fmt.Errorf("--transaction-records must not be negative")
	case c.TxnRecords > 0 && c.Acks != "all" && c.Acks != "-1":
		return fmt.Errorf("--transaction-records needs --acks all: a transactional producer is idempotent")
	}
	if _, err := c.producerOpts(); err != nil {
		return err
	}
	return nil
}

// producerOpts are the client options for one producer.
func (c *Config) producerOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytes(c.BatchBytes),
		kgo.MaxBufferedRecords(1 << 16),
		// A record that cannot be delivered fails instead of holding the run forever.
		kgo.RecordDeliveryTimeout(time.Minute),
	}
	switch c.Acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
	default:
		return nil, fmt.Errorf("--acks %q: want all, 1 or 0", c.Acks)
	}
	codec, err := Codec(c.Compression)
	if err != nil {
		return nil, err
	}
	return append(opts, kgo.ProducerBatchCompression(codec)), nil
}

// Codec is the franz-go codec named none, gzip, snappy, lz4 or zstd, as --compression takes them.
func Codec(s string) (kgo.CompressionCodec, error) {
	switch s {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

func (c *Config) client(opts ...kgo.Opt) (*kgo.Client, error) {
	all := append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, c.ClientOpts...)
	return kgo.NewClient(append(all, opts...)...)
}
