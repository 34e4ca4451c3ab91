package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/bench"
)

func newProduceCmd() *cobra.Command {
	var keySep, acks, compression string
	var partition int32
	var headers []string
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of standard input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hdrs, err := parseKV(headers)
			if err != nil {
				return err
			}
			opts := []kgo.Opt{kgo.DefaultProduceTopic(args[0])}
			switch acks {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
			default:
				return fmt.Errorf("--acks %q: want all, 1 or 0", acks)
			}
			codec, err := bench.Codec(compression)
			if err != nil {
				return err
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			if partition >= 0 {
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			}
			cl, err := newClient(cmd, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			var ok, failed atomic.Int64
			var firstErr error
			var mu sync.Mutex
			sc := bufio.NewScanner(os.Stdin)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				line := sc.Text()
				r := &kgo.Record{Value: []byte(line), Partition: partition}
				if keySep != "" {
					if k, v, found := strings.Cut(line, keySep); found {
						r.Key, r.Value = []byte(k), []byte(v)
					}
				}
				for k, v := range hdrs {
					r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(*v)})
				}
				cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					ok.Add(1)
				})
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			if err := cl.Flush(context.Background()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "produced %d records to %s, %d failed\n", ok.Load(), args[0], failed.Load())
			if firstErr != nil {
				return fmt.Errorf("%d records failed, first: %w", failed.Load(), firstErr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&keySep, "key-separator", "k", "", "split each line into key and value at the first occurrence of this string")
	f.Int32VarP(&partition, "partition", "p", -1, "partition to write to (default: by key, or spread)")
	f.StringArrayVarP(&headers, "header", "H", nil, "record header key=value (repeatable)")
	f.StringVar(&acks, "acks", "all", "all, 1 or 0")
	f.StringVar(&compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	return cmd
}
