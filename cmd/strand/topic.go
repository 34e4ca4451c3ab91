package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe, delete and configure topics"}
	cmd.AddCommand(newTopicCreateCmd(), newTopicListCmd(), newTopicDescribeCmd(), newTopicDeleteCmd(), newTopicAlterConfigCmd())
	return cmd
}

func parseKV(items []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, kv := range items {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		out[k] = &v
	}
	return out, nil
}

func newTopicCreateCmd() *cobra.Command {
	var partitions int32
	var rf int16
	var configs []string
	var assignment string
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseKV(configs)
			if err != nil {
				return err
			}
			if assignment != "" {
				if cmd.Flags().Changed("partitions") || cmd.Flags().Changed("replication-factor") {
					return fmt.Errorf("--replica-assignment fixes the partitions and replication factor; leave out --partitions and --replication-factor")
				}
				replicas, err := parseReplicaAssignment(assignment)
				if err != nil {
					return err
				}
				return createAssignedTopic(cmd, args[0], replicas, cfg)
			}
			adm, ctx, done, err := openAdmin(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := adm.CreateTopic(ctx, partitions, rf, cfg, args[0])
			if err != nil {
				return fmt.Errorf("create %s: %w", args[0], err)
			}
			if resp.Err != nil {
				return fmt.Errorf("create %s: %w%s", args[0], resp.Err, detail(resp.ErrMessage))
			}
			fmt.Printf("created topic %s with %d partitions\n", resp.Topic, resp.NumPartitions)
			return nil
		},
	}
	cmd.Flags().Int32VarP(&partitions, "partitions", "p", -1, "partitions (default: the broker's num.partitions)")
	cmd.Flags().Int16VarP(&rf, "replication-factor", "r", -1, "replicas per partition (default: the broker's default.replication.factor)")
	cmd.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	cmd.Flags().StringVar(&assignment, "replica-assignment", "", "place replicas by hand, as kafka-topics: partitions separated by commas, each broker ids separated by colons, preferred leader first (1:2:3,2:3:1)")
	return cmd
}

func detail(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func newTopicListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			topics, err := adm.ListTopicsWithInternal(ctx)
			if err != nil {
				return err
			}
			type row struct {
				Topic             string `json:"topic"`
				Partitions        int    `json:"partitions"`
				ReplicationFactor int    `json:"replication_factor"`
				Internal          bool   `json:"internal"`
			}
			var rows []row
			for _, t := range topics.Sorted() {
				rf := 0
				if len(t.Partitions) > 0 {
					rf = t.Partitions.NumReplicas()
				}
				rows = append(rows, row{t.Topic, len(t.Partitions), rf, t.IsInternal})
			}
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				table = append(table, []string{r.Topic, strconv.Itoa(r.Partitions), strconv.Itoa(r.ReplicationFactor), strconv.FormatBool(r.Internal)})
			}
			printTable(cmd.OutOrStdout(), []string{"TOPIC", "PARTITIONS", "REPLICAS", "INTERNAL"}, table)
			return nil
		}),
	}
}

func newTopicDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's partitions, offsets and configs",
		Args:  cobra.ExactArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			topics, err := adm.ListTopics(ctx, args[0])
			if err != nil {
				return err
			}
			td, ok := topics[args[0]]
			if !ok || td.Err != nil {
				return fmt.Errorf("describe %s: %v", args[0], td.Err)
			}
			starts, err := adm.ListStartOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			ends, err := adm.ListEndOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			// ListOffsets with isolation read_committed answers the last stable offset.
			stables, err := adm.ListCommittedOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			configs, err := adm.DescribeTopicConfigs(ctx, args[0])
			if err != nil {
				return err
			}
			type partRow struct {
				Partition int32   `json:"partition"`
				Leader    int32   `json:"leader"`
				Epoch     int32   `json:"leader_epoch"`
				Replicas  []int32 `json:"replicas"`
				ISR       []int32 `json:"isr"`
				Start     int64   `json:"log_start_offset"`
				End       int64   `json:"high_watermark"`
				Stable    int64   `json:"last_stable_offset"`
			}
			out := struct {
				Topic      string            `json:"topic"`
				ID         string            `json:"id"`
				Partitions []partRow         `json:"partitions"`
				Configs    map[string]string `json:"configs"`
			}{Topic: td.Topic, ID: td.ID.String(), Configs: map[string]string{}}
			for _, p := range td.Partitions.Sorted() {
				r := partRow{Partition: p.Partition, Leader: p.Leader, Epoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR}
				if o, ok := starts.Lookup(args[0], p.Partition); ok {
					r.Start = o.Offset
				}
				if o, ok := ends.Lookup(args[0], p.Partition); ok {
					r.End = o.Offset
				}
				if o, ok := stables.Lookup(args[0], p.Partition); ok {
					r.Stable = o.Offset
				}
				out.Partitions = append(out.Partitions, r)
			}
			var configRows [][]string
			for _, rc := range configs {
				for _, c := range rc.Configs {
					out.Configs[c.Key] = c.MaybeValue()
					configRows = append(configRows, []string{c.Key, c.MaybeValue(), strings.ToLower(strings.TrimPrefix(c.Source.String(), "DYNAMIC_"))})
				}
			}
			sort.Slice(configRows, func(i, j int) bool { return configRows[i][0] < configRows[j][0] })
			if asJSON {
				return printJSON(out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "topic %s (id %s)\n\n", out.Topic, out.ID)
			var rows [][]string
			for _, r := range out.Partitions {
				rows = append(rows, []string{strconv.Itoa(int(r.Partition)), strconv.Itoa(int(r.Leader)), strconv.Itoa(int(r.Epoch)),
					ints(r.Replicas), ints(r.ISR), strconv.FormatInt(r.Start, 10), strconv.FormatInt(r.End, 10), strconv.FormatInt(r.Stable, 10)})
			}
			printTable(w, []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "LAST-STABLE"}, rows)
			fmt.Fprintln(w)
			printTable(w, []string{"CONFIG", "VALUE", "SOURCE"}, configRows)
			return nil
		}),
	}
}

func ints(v []int32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ",")
}

func newTopicDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOPIC...",
		Short: "Delete topics and their data",
		Args:  cobra.MinimumNArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			resps, err := adm.DeleteTopics(ctx, args...)
			if err != nil {
				return err
			}
			var failed error
			for _, r := range resps.Sorted() {
				if r.Err != nil {
					failed = fmt.Errorf("delete %s: %w%s", r.Topic, r.Err, detail(r.ErrMessage))
					fmt.Fprintln(cmd.ErrOrStderr(), failed)
					continue
				}
				fmt.Printf("deleted topic %s\n", r.Topic)
			}
			return failed
		}),
	}
}

func newTopicAlterConfigCmd() *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config TOPIC",
		Short: "Set or delete topic configs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kv, err := parseKV(set)
			if err != nil {
				return err
			}
			var alters []kadm.AlterConfig
			for k, v := range kv {
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
			}
			for _, k := range del {
				alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
			}
			if len(alters) == 0 {
				return fmt.Errorf("nothing to change: use --set key=value or --delete key")
			}
			adm, ctx, done, err := openAdmin(cmd)
			if err != nil {
				return err
			}
			defer done()
			resps, err := adm.AlterTopicConfigs(ctx, alters, args[0])
			if err != nil {
				return err
			}
			for _, r := range resps {
				if r.Err != nil {
					return fmt.Errorf("alter %s: %w%s", r.Name, r.Err, detail(r.ErrMessage))
				}
			}
			fmt.Printf("altered configs of %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to reset to its default (repeatable)")
	return cmd
}
