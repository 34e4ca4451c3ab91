package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumedRecord is what --format templates see.
type consumedRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp time.Time         `json:"timestamp"`
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

func newConsumeCmd() *cobra.Command {
	var from, tmpl string
	var partition int32
	var count int
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print records of a topic, one per line.

--from is beginning, end, an offset, or a time (RFC 3339, or milliseconds since the epoch
written as @MS). --format is json, or a Go template over .Topic .Partition .Offset
.Timestamp .Key .Value .Headers (default "{{.Value}}").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			format, _ := cmd.Flags().GetString("format")
			if format == "table" || format == "" {
				format = tmpl
			}
			var t *template.Template
			if format != "json" {
				var err error
				if t, err = template.New("record").Parse(format + "\n"); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			start, err := startOffsets(ctx, cmd, topic, from, partition)
			if err != nil {
				return err
			}
			cl, err := newClient(cmd, kgo.ConsumePartitions(start))
			if err != nil {
				return err
			}
			defer cl.Close()
			seen := 0
			enc := json.NewEncoder(os.Stdout)
			for count <= 0 || seen < count {
				pollCtx := ctx
				var stop context.CancelFunc = func() {}
				if idle > 0 {
					pollCtx, stop = context.WithTimeout(ctx, idle)
				}
				fetches := cl.PollFetches(pollCtx)
				stop()
				if ctx.Err() != nil || (idle > 0 && errors.Is(pollCtx.Err(), context.DeadlineExceeded) && fetches.NumRecords() == 0) {
					break
				}
				for _, fe := range fetches.Errors() {
					if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
						return fmt.Errorf("fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
					}
				}
				for _, r := range fetches.Records() {
					if count > 0 && seen >= count {
						break
					}
					rec := consumedRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
						Key: string(r.Key), Value: string(r.Value)}
					if len(r.Headers) > 0 {
						rec.Headers = map[string]string{}
						for _, h := range r.Headers {
							rec.Headers[h.Key] = string(h.Value)
						}
					}
					if t == nil {
						err = enc.Encode(rec)
					} else {
						err = t.Execute(os.Stdout, rec)
					}
					if err != nil {
						return err
					}
					seen++
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "beginning", "beginning, end, OFFSET, or a time (RFC 3339 or @MS)")
	f.Int32VarP(&partition, "partition", "p", -1, "only this partition (default: all)")
	f.IntVarP(&count, "count", "n", 0, "stop after this many records (default: never)")
	f.StringVar(&tmpl, "template", "{{.Value}}", "output template when --format is table")
	f.DurationVar(&idle, "timeout", 0, "stop after this long without records (default: never)")
	return cmd
}

// startOffsets resolves --from into a start offset per partition.
func startOffsets(ctx context.Context, cmd *cobra.Command, topic, from string, only int32) (map[string]map[int32]kgo.Offset, error) {
	cl, err := newClient(cmd)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	var at kgo.Offset
	var byTime kadm.ListedOffsets
	switch {
	case from == "beginning":
		at = kgo.NewOffset().AtStart()
	case from == "end":
		at = kgo.NewOffset().AtEnd()
	default:
		if off, err := strconv.ParseInt(from, 10, 64); err == nil {
			at = kgo.NewOffset().At(off)
			break
		}
		var ms int64
		if len(from) > 1 && from[0] == '@' {
			if ms, err = strconv.ParseInt(from[1:], 10, 64); err != nil {
				return nil, fmt.Errorf("--from %q: %w", from, err)
			}
		} else {
			ts, err := time.Parse(time.RFC3339, from)
			if err != nil {
				return nil, fmt.Errorf("--from %q: want beginning, end, an offset, RFC 3339 time or @MS", from)
			}
			ms = ts.UnixMilli()
		}
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, ms, topic); err != nil {
			return nil, err
		}
	}
	out := map[string]map[int32]kgo.Offset{topic: {}}
	for _, p := range td.Partitions {
		if only >= 0 && p.Partition != only {
			continue
		}
		o := at
		if byTime != nil {
			lo, ok := byTime.Lookup(topic, p.Partition)
			if !ok || lo.Err != nil {
				return nil, fmt.Errorf("offset by time for %s[%d]: %v", topic, p.Partition, lo.Err)
			}
			o = kgo.NewOffset().At(lo.Offset)
		}
		out[topic][p.Partition] = o
	}
	if len(out[topic]) == 0 {
		return nil, fmt.Errorf("topic %s has no partition %d", topic, only)
	}
	return out, nil
}
