package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strand-data/strand/internal/broker"
	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
)

func newServeCmd() *cobra.Command {
	d := broker.DefaultConfig()
	var fsync, voters, logLevel, pprofAddr string
	var brokerConfigs []string
	var unsafeVolatile, unsafeDiskFaults bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Strand node (Kafka protocol and HTTP)",
		Long: `Run a Strand node. With no flags: a single node with data in ./strand-data, Kafka on
127.0.0.1:9092 and HTTP (/healthz, /readyz, /metrics) on 127.0.0.1:8080.

--fsync decides what an acknowledgement promises (the metadata log is always fsynced):
  always    an acknowledged record is on disk (fsynced, group commit; with acks=all on
            every in-sync replica); nothing acknowledged is lost on power failure, even
            of every node at once. The default.
  interval  records are fsynced every second; a power failure of every replica at once
            (or of a single node) can lose up to the last second of acknowledged records.
            One node of a cluster losing power loses nothing acknowledged with acks=all:
            it leaves the ISR on restart and copies back what it lost. A process crash
            loses nothing.
  never     the operating system decides when to write; a power failure of every replica
            at once can lose any acknowledged record not yet written back. One node of a
            cluster losing power, or a process crash, loses nothing acknowledged with
            acks=all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			d.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			policy, err := journal.ParseFsyncPolicy(fsync)
			if err != nil {
				return fmt.Errorf("--fsync: %w", err)
			}
			d.Fsync = policy
			d.StaticConfigs = map[string]string{}
			for _, kv := range brokerConfigs {
				name, value, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--broker-config %q: want name=value", kv)
				}
				d.StaticConfigs[name] = value
			}
			if err := flagsAgreeWithBrokerConfigs(cmd.Flags(), d.StaticConfigs); err != nil {
				return err
			}
			if voters != "" {
				if d.Voters, err = cluster.ParseVoters(voters); err != nil {
					return fmt.Errorf("--controller-voters: %w", err)
				}
			}
			d.Security.AdminPassword = os.Getenv("STRAND_ADMIN_PASSWORD")
			if err := d.Security.Validate(); err != nil {
				return err
			}
			fs, routes := unsafeFS(unsafeVolatile, unsafeDiskFaults, d.Logger)
			d.FS, d.HTTPRoutes = fs, routes
			b, err := broker.New(d)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if pprofAddr != "" {
				closeProfiler, err := serveProfiler(pprofAddr, d.Logger)
				if err != nil {
					return err
				}
				defer closeProfiler()
			}
			return b.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.DataDir, "data-dir", d.DataDir, "directory for partitions and metadata")
	f.StringVar(&d.KafkaAddr, "kafka-addr", d.KafkaAddr, "Kafka protocol listen address")
	f.StringVar(&d.AdvertisedKafkaAddr, "advertised-kafka-addr", "", "address clients are told to use (default: the listen address)")
	f.StringVar(&d.HTTPAddr, "http-addr", d.HTTPAddr, "HTTP listen address (health, readiness, metrics)")
	f.Int32Var(&d.NodeID, "node-id", d.NodeID, "this node's id")
	f.StringVar(&fsync, "fsync", "always", "durability of acknowledged writes: always, interval or never")
	f.StringVar(&d.ControllerAddr, "controller-addr", "", "metadata (raft) listen address; empty for a single node")
	f.StringVar(&voters, "controller-voters", "", "metadata voters, e.g. 1@127.0.0.1:9093,2@127.0.0.2:9093")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringArrayVar(&brokerConfigs, "broker-config", nil, "a broker config fixed for this run, name=value (repeatable), e.g. group.consumer.session.timeout.ms=10000")
	f.DurationVar(&d.RetentionCheckInterval, "log-retention-check-interval", d.RetentionCheckInterval, "how often retention looks for segments to delete (log.retention.check.interval.ms)")
	f.DurationVar(&d.CleanerBackoff, "log-cleaner-backoff", d.CleanerBackoff, "how long the log cleaner rests when no log needs cleaning (log.cleaner.backoff.ms)")
	f.DurationVar(&d.RetentionCheckInterval, "log-check-interval", d.RetentionCheckInterval, "retention's interval")
	cobra.CheckErr(f.MarkDeprecated("log-check-interval", "use --log-retention-check-interval; the cleaner is paced by --log-cleaner-backoff"))
	f.Int64Var(&d.CleanerDedupeBufferSize, "cleaner-dedupe-buffer-size", d.CleanerDedupeBufferSize, "bytes of memory for the log cleaner's key map (log.cleaner.dedupe.buffer.size)")
	f.Int64Var(&d.CleanerIOBytesPerSecond, "cleaner-io-bytes-per-second", d.CleanerIOBytesPerSecond, "log cleaner read+write budget in bytes per second; 0 for no limit")
	f.Int64Var(&d.ScrubBytesPerSecond, "scrub-bytes-per-second", d.ScrubBytesPerSecond, "rate at which closed segments are re-read to find damaged batches; 0 disables the scrubber")
	f.DurationVar(&d.ScrubIdle, "scrub-idle", d.ScrubIdle, "how long the scrubber rests after a pass that found nothing to read")
	f.BoolVar(&unsafeVolatile, "unsafe-volatile-writes", false, "test only: keep written data in memory until synced, so a kill loses what an OS crash would")
	f.BoolVar(&unsafeDiskFaults, "unsafe-disk-faults", false, "test only: serve POST/DELETE /v1/internal/disk-faults to make this node's disk fail")
	for _, name := range []string{"unsafe-volatile-writes", "unsafe-disk-faults"} {
		cobra.CheckErr(f.MarkHidden(name))
	}
	addSecurityFlags(f, &d.Security)
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this address; off when empty")
	return cmd
}

// flagsAgreeWithBrokerConfigs refuses a setting given twice, as a flag and as the
// --broker-config it stands for, so that neither silently wins.
func flagsAgreeWithBrokerConfigs(f *pflag.FlagSet, static map[string]string) error {
	for flag, name := range map[string]string{
		"log-retention-check-interval": "log.retention.check.interval.ms",
		"log-check-interval":           "log.retention.check.interval.ms",
		"log-cleaner-backoff":          "log.cleaner.backoff.ms",
	} {
		if _, ok := static[name]; ok && f.Changed(flag) {
			return fmt.Errorf("--%s and --broker-config %s both given; give one", flag, name)
		}
	}
	return nil
}

// serveProfiler serves net/http/pprof on its own listener, apart from the public HTTP API,
// so profiling is never exposed by accident. The returned func closes it.
func serveProfiler(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Warn("profiler stopped", "err", err)
		}
	}()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close(); <-done }, nil
}
