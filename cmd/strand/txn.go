package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// strand txn: what kafka-transactions.sh does — list and describe transactions, show a
// partition's active producers, and abort a hanging transaction.

func newTxnCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "txn", Short: "List, describe and abort transactions"}
	cmd.AddCommand(newTxnListCmd(), newTxnDescribeCmd(), newTxnProducersCmd(), newTxnAbortCmd())
	return cmd
}

func newTxnListCmd() *cobra.Command {
	var states []string
	var producers []int64
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids and the state of their transactions",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			listed, err := adm.ListTransactions(ctx, producers, states)
			if err != nil {
				return err
			}
			type row struct {
				TransactionalID string `json:"transactional_id"`
				Coordinator     int32  `json:"coordinator"`
				ProducerID      int64  `json:"producer_id"`
				State           string `json:"state"`
			}
			out := []row{}
			for _, t := range listed.Sorted() {
				out = append(out, row{t.TxnID, t.Coordinator, t.ProducerID, t.State})
			}
			if asJSON {
				return printJSON(out)
			}
			var rows [][]string
			for _, r := range out {
				rows = append(rows, []string{r.TransactionalID, strconv.Itoa(int(r.Coordinator)), strconv.FormatInt(r.ProducerID, 10), r.State})
			}
			printTable(cmd.OutOrStdout(), []string{"TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"}, rows)
			return nil
		}),
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only these states (Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Empty, ...)")
	cmd.Flags().Int64SliceVar(&producers, "producer-id", nil, "only these producer ids")
	return cmd
}

func newTxnDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe TRANSACTIONAL-ID",
		Short: "Show a transactional id's producer, state, timeout and partitions",
		Args:  cobra.ExactArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			described, err := adm.DescribeTransactions(ctx, args[0])
			if err != nil {
				return err
			}
			d, ok := described[args[0]]
			if !ok {
				return fmt.Errorf("describe %s: no answer from its coordinator", args[0])
			}
			if d.Err != nil {
				return fmt.Errorf("describe %s: %w", args[0], d.Err)
			}
			out := struct {
				TransactionalID string             `json:"transactional_id"`
				Coordinator     int32              `json:"coordinator"`
				State           string             `json:"state"`
				ProducerID      int64              `json:"producer_id"`
				ProducerEpoch   int16              `json:"producer_epoch"`
				TimeoutMs       int32              `json:"timeout_ms"`
				StartTimestamp  int64              `json:"start_timestamp_ms"`
				Partitions      map[string][]int32 `json:"partitions"`
			}{d.TxnID, d.Coordinator, d.State, d.ProducerID, d.ProducerEpoch, d.TimeoutMillis, d.StartTimestamp, map[string][]int32{}}
			for t, ps := range d.Topics {
				for p := range ps {
					out.Partitions[t] = append(out.Partitions[t], p)
				}
				sort.Slice(out.Partitions[t], func(i, j int) bool { return out.Partitions[t][i] < out.Partitions[t][j] })
			}
			if asJSON {
				return printJSON(out)
			}
			w := cmd.OutOrStdout()
			started := "-"
			if out.StartTimestamp > 0 {
				start := time.UnixMilli(out.StartTimestamp)
				started = fmt.Sprintf("%s (%s ago)", start.UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
			}
			var parts []string
			for t, ps := range out.Partitions {
				parts = append(parts, t+"["+ints(ps)+"]")
			}
			sort.Strings(parts)
			printTable(w, []string{"TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "EPOCH", "STATE", "TIMEOUT", "STARTED", "PARTITIONS"},
				[][]string{{out.TransactionalID, strconv.Itoa(int(out.Coordinator)), strconv.FormatInt(out.ProducerID, 10),
					strconv.Itoa(int(out.ProducerEpoch)), out.State, (time.Duration(out.TimeoutMs) * time.Millisecond).String(), started,
					strings.Join(parts, " ")}})
			return nil
		}),
	}
}

func newTxnProducersCmd() *cobra.Command {
	var topic string
	var partition int32
	cmd := &cobra.Command{
		Use:   "producers --topic T [--partition P]",
		Short: "Show a topic's active producers and the first offset of their open transactions",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			rows, err := describeProducers(ctx, adm, topic, partition)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, p := range rows {
				start := "-"
				if p.CurrentTxnStartOffset >= 0 {
					start = strconv.FormatInt(p.CurrentTxnStartOffset, 10)
				}
				table = append(table, []string{strconv.Itoa(int(p.Partition)), strconv.FormatInt(p.ProducerID, 10), strconv.Itoa(int(p.ProducerEpoch)),
					strconv.Itoa(int(p.LastSequence)), time.UnixMilli(p.LastTimestamp).UTC().Format(time.RFC3339), strconv.Itoa(int(p.CoordinatorEpoch)), start})
			}
			printTable(cmd.OutOrStdout(), []string{"PARTITION", "PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "COORDINATOR-EPOCH", "TXN-START-OFFSET"}, table)
			return nil
		}),
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic")
	cmd.Flags().Int32Var(&partition, "partition", -1, "one partition (default: all)")
	return cmd
}

// producerRow is one active producer of one partition.
type producerRow struct {
	Topic                 string `json:"topic"`
	Partition             int32  `json:"partition"`
	ProducerID            int64  `json:"producer_id"`
	ProducerEpoch         int16  `json:"producer_epoch"`
	LastSequence          int32  `json:"last_sequence"`
	LastTimestamp         int64  `json:"last_timestamp_ms"`
	CoordinatorEpoch      int32  `json:"coordinator_epoch"`
	CurrentTxnStartOffset int64  `json:"current_txn_start_offset"`
}

// describeProducers asks the leaders of topic's partitions (or of one, when partition >= 0)
// for their active producers.
func describeProducers(ctx context.Context, adm *kadm.Client, topic string, partition int32) ([]producerRow, error) {
	set := kadm.TopicsSet{}
	if partition >= 0 {
		set.Add(topic, partition)
	} else {
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return nil, err
		}
		td, ok := topics[topic]
		if !ok || td.Err != nil {
			return nil, fmt.Errorf("topic %s: %v", topic, td.Err)
		}
		for _, p := range td.Partitions.Sorted() {
			set.Add(topic, p.Partition)
		}
	}
	described, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, err
	}
	rows := []producerRow{}
	var failed error
	for _, ps := range described[topic].Partitions {
		if ps.Err != nil {
			failed = errors.Join(failed, fmt.Errorf("%s-%d: %w", topic, ps.Partition, ps.Err))
			continue
		}
		for _, p := range ps.ActiveProducers {
			rows = append(rows, producerRow{topic, ps.Partition, p.ProducerID, p.ProducerEpoch, p.LastSequence, p.LastTimestamp, p.CoordinatorEpoch, p.CurrentTxnStartOffset})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].Partition < rows[j].Partition || rows[i].Partition == rows[j].Partition && rows[i].ProducerID < rows[j].ProducerID
	})
	return rows, failed
}

func newTxnAbortCmd() *cobra.Command {
	var topic string
	var partition int32
	var start int64
	cmd := &cobra.Command{
		Use:   "abort --topic T --partition P --start-offset O",
		Short: "Abort a hanging transaction: the open transaction that starts at offset O",
		Long: "Abort writes an ABORT marker for the producer whose open transaction in the partition starts at --start-offset,\n" +
			"as kafka-transactions.sh abort does. Use it only for a transaction its coordinator no longer knows (a hanging\n" +
			"transaction holding the last stable offset back); `strand txn producers` shows the start offsets.",
		Args: cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			if topic == "" || partition < 0 || start < 0 {
				return errors.New("--topic, --partition and --start-offset are required")
			}
			rows, err := describeProducers(ctx, adm, topic, partition)
			if err != nil {
				return err
			}
			var found *producerRow
			for i := range rows {
				if rows[i].CurrentTxnStartOffset == start {
					found = &rows[i]
				}
			}
			if found == nil {
				return fmt.Errorf("no open transaction starts at offset %d of %s-%d (see strand txn producers --topic %s)", start, topic, partition, topic)
			}
			set := kadm.TopicsSet{}
			set.Add(topic, partition)
			resps, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{ProducerID: found.ProducerID, ProducerEpoch: found.ProducerEpoch,
				CoordinatorEpoch: found.CoordinatorEpoch, Commit: false, Topics: set})
			if err != nil {
				return err
			}
			for _, r := range resps {
				for _, t := range r.Topics {
					for _, p := range t.Partitions {
						if p.Err != nil {
							return fmt.Errorf("abort %s-%d producer %d: %w", topic, partition, found.ProducerID, p.Err)
						}
					}
				}
			}
			if asJSON {
				return printJSON(found)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "aborted the transaction of producer %d (epoch %d) starting at %s-%d offset %d\n",
				found.ProducerID, found.ProducerEpoch, topic, partition, start)
			return nil
		}),
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic")
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition")
	cmd.Flags().Int64Var(&start, "start-offset", -1, "first offset of the transaction to abort")
	return cmd
}
