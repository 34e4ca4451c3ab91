package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strand-data/strand/internal/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a Kafka-compatible cluster: produce, consume, or end to end",
		Long: `Run a standard workload against Strand or any Kafka-compatible cluster and report
records/s, MB/s and latency percentiles (HDR histogram). Progress goes to standard error
every second; the result goes to standard output (--format json for programs).

  produce  latency is from when a record was due to be sent to its acknowledgement
  consume  reads the topic from the beginning (it must hold --records records)
  e2e      produces and consumes at once; latency is from the record's send timestamp to
           the moment a consumer sees it, with a breakdown of where it went: the
           produce round trip and the consumer's handoff as the clients see them, and,
           given the brokers' HTTP addresses (--http), the server's stages from their
           /metrics histograms (request read → appended → fsynced → high watermark →
           fetch answered)`,
	}
	for _, mode := range []bench.Mode{bench.Produce, bench.Consume, bench.E2E} {
		cmd.AddCommand(newBenchModeCmd(mode))
	}
	cmd.AddCommand(newBenchFsyncCmd())
	return cmd
}

// newBenchFsyncCmd measures the disk reference e2e latency is read against.
func newBenchFsyncCmd() *cobra.Command {
	cfg := bench.FsyncConfig{Dir: ".", WriteSize: 4096, Files: 1, Duration: 10 * time.Second}
	cmd := &cobra.Command{
		Use:   "fsync",
		Short: "Measure this disk's fdatasync latency (the reference for e2e latency)",
		Long: `Append --write-size bytes to a file in --dir and fdatasync it, back to back, for
--duration, and report the fdatasync latency percentiles: what one group commit of a
partition costs on this filesystem with nothing else in the way. Run it on the filesystem
that holds --data-dir. With --files N, N files are appended and synced concurrently, as N
partitions are.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			res, err := bench.Fsync(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", cfg.Dir, "directory on the filesystem to measure (a temporary subdirectory is used and removed)")
	f.IntVar(&cfg.WriteSize, "write-size", cfg.WriteSize, "bytes appended before each fdatasync")
	f.IntVar(&cfg.Files, "files", cfg.Files, "files appended and synced concurrently")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to measure")
	return cmd
}

func newBenchModeCmd(mode bench.Mode) *cobra.Command {
	cfg := bench.DefaultConfig()
	var quiet bool
	var httpAddrs string
	cmd := &cobra.Command{
		Use:   string(mode),
		Short: fmt.Sprintf("Run the %s workload", mode),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			brokers, _ := cmd.Flags().GetString("brokers")
			cfg.Brokers = splitList(brokers)
			security, err := clientSecurityOpts(cmd)
			if err != nil {
				return err
			}
			cfg.ClientOpts = append(cfg.ClientOpts, security...)
			// --duration alone bounds the run by time only.
			if cmd.Flags().Changed("duration") && !cmd.Flags().Changed("records") {
				cfg.Records = 0
			}
			cfg.MetricsAddrs = splitList(httpAddrs)
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			res, err := bench.Run(cmd.Context(), mode, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				err = res.WriteJSON(cmd.OutOrStdout())
			} else {
				err = res.WriteTable(cmd.OutOrStdout())
			}
			if err == nil && res.Errors > 0 {
				err = fmt.Errorf("%d records failed, first: %s", res.Errors, res.FirstError)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Topic, "topic", cfg.Topic, "topic to use (created if missing)")
	f.Int32Var(&cfg.Partitions, "partitions", cfg.Partitions, "partitions when the topic is created")
	f.Int16Var(&cfg.ReplicationFactor, "replication-factor", cfg.ReplicationFactor, "replication factor when the topic is created")
	f.Int64Var(&cfg.Records, "records", cfg.Records, "records to produce (consume: to read)")
	f.DurationVar(&cfg.Duration, "duration", 0, "run for this long (alone, it replaces --records)")
	f.BoolVar(&quiet, "quiet", false, "no progress lines")
	if mode != bench.Consume {
		f.IntVar(&cfg.RecordSize, "record-size", cfg.RecordSize, "value bytes per record")
		f.IntVar(&cfg.Producers, "producers", cfg.Producers, "producer clients")
		f.StringVar(&cfg.Acks, "acks", cfg.Acks, "all, 1 or 0")
		f.StringVar(&cfg.Compression, "compression", cfg.Compression, "none, gzip, snappy, lz4 or zstd")
		f.DurationVar(&cfg.Linger, "linger", cfg.Linger, "how long a partition's batch waits for more records")
		f.Int32Var(&cfg.BatchBytes, "batch-bytes", cfg.BatchBytes, "largest record batch")
		f.Float64Var(&cfg.Rate, "rate", 0, "offered load in records/s across producers (0: as fast as possible)")
		f.IntVar(&cfg.TxnRecords, "transaction-records", 0, "make each producer transactional, committing every N records (0: not transactional)")
	}
	if mode != bench.Produce {
		f.IntVar(&cfg.Consumers, "consumers", cfg.Consumers, "consumer clients (partitions are split between them)")
		f.BoolVar(&cfg.ReadCommitted, "read-committed", false, "consume with isolation.level=read_committed")
	}
	if mode == bench.E2E {
		f.StringVar(&httpAddrs, "http", "", "the brokers' HTTP addresses, comma-separated, for the server's part of the latency breakdown (STRAND_HTTP)")
	}
	return cmd
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
