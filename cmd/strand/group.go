package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "List, describe, reset and delete consumer groups"}
	cmd.AddCommand(newGroupListCmd(), newGroupDescribeCmd(), newGroupResetCmd(), newGroupDeleteCmd())
	return cmd
}

func newGroupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List consumer groups",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			groups, err := adm.ListGroups(ctx)
			if err != nil {
				return err
			}
			type row struct {
				Group, State, ProtocolType string
			}
			var rows []row
			for _, g := range groups.Sorted() {
				rows = append(rows, row{g.Group, g.State, g.ProtocolType})
			}
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				table = append(table, []string{r.Group, r.State, r.ProtocolType})
			}
			printTable(cmd.OutOrStdout(), []string{"GROUP", "STATE", "PROTOCOL-TYPE"}, table)
			return nil
		}),
	}
}

type lagRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Member    string `json:"member,omitempty"`
	Committed int64  `json:"committed"`
	End       int64  `json:"log_end_offset"`
	Stable    int64  `json:"last_stable_offset"`
	Lag       int64  `json:"lag"` // to the last stable offset: what a read_committed consumer can still read
}

func newGroupDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, assignments, committed offsets and lag",
		Args:  cobra.ExactArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			described, err := adm.DescribeGroups(ctx, args[0])
			if err != nil {
				return err
			}
			d := described[args[0]]
			if d.Err != nil {
				return fmt.Errorf("describe %s: %w", args[0], d.Err)
			}
			offsets, err := adm.FetchOffsets(ctx, args[0])
			if err != nil {
				return err
			}
			owner := map[string]string{}
			for _, m := range d.Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range a.Topics {
						for _, p := range t.Partitions {
							owner[t.Topic+"/"+strconv.Itoa(int(p))] = m.MemberID
						}
					}
				}
			}
			var topics []string
			for t := range offsets {
				topics = append(topics, t)
			}
			var rows []lagRow
			if len(topics) > 0 {
				ends, err := adm.ListEndOffsets(ctx, topics...)
				if err != nil {
					return err
				}
				stables, err := adm.ListCommittedOffsets(ctx, topics...)
				if err != nil {
					return err
				}
				// Lag is measured to the last stable offset, as for a read_committed consumer:
				// the records of open transactions are not yet readable, and a transaction's
				// marker is not a record to consume. Without transactions it is the high
				// watermark.
				offsets.Each(func(o kadm.OffsetResponse) {
					r := lagRow{Topic: o.Topic, Partition: o.Partition, Committed: o.At, Member: owner[o.Topic+"/"+strconv.Itoa(int(o.Partition))]}
					if e, ok := ends.Lookup(o.Topic, o.Partition); ok && e.Err == nil {
						r.End, r.Stable, r.Lag = e.Offset, e.Offset, max(0, e.Offset-o.At)
					}
					if e, ok := stables.Lookup(o.Topic, o.Partition); ok && e.Err == nil {
						r.Stable, r.Lag = e.Offset, max(0, e.Offset-o.At)
					}
					rows = append(rows, r)
				})
			}
			sort.Slice(rows, func(i, j int) bool {
				return rows[i].Topic < rows[j].Topic || rows[i].Topic == rows[j].Topic && rows[i].Partition < rows[j].Partition
			})
			if asJSON {
				return printJSON(struct {
					Group   string   `json:"group"`
					State   string   `json:"state"`
					Members []string `json:"members"`
					Offsets []lagRow `json:"offsets"`
				}{d.Group, d.State, memberIDs(d), rows})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "group %s: %s, %d members, protocol %s\n\n", d.Group, d.State, len(d.Members), d.Protocol)
			var members [][]string
			for _, m := range d.Members {
				var assigned []string
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range a.Topics {
						assigned = append(assigned, t.Topic+"["+ints(t.Partitions)+"]")
					}
				}
				members = append(members, []string{m.MemberID, m.ClientID, m.ClientHost, strings.Join(assigned, " ")})
			}
			printTable(w, []string{"MEMBER", "CLIENT", "HOST", "ASSIGNED"}, members)
			fmt.Fprintln(w)
			var table [][]string
			for _, r := range rows {
				table = append(table, []string{r.Topic, strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Committed, 10),
					strconv.FormatInt(r.End, 10), strconv.FormatInt(r.Stable, 10), strconv.FormatInt(r.Lag, 10), r.Member})
			}
			printTable(w, []string{"TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAST-STABLE", "LAG", "MEMBER"}, table)
			return nil
		}),
	}
}

func memberIDs(d kadm.DescribedGroup) []string {
	var ids []string
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

func newGroupResetCmd() *cobra.Command {
	var topic, to string
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP",
		Short: "Move a group's committed offsets on a topic (only while the group has no members)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if topic == "" {
				return fmt.Errorf("--topic is required")
			}
			adm, ctx, done, err := openAdmin(cmd)
			if err != nil {
				return err
			}
			defer done()
			described, err := adm.DescribeGroups(ctx, args[0])
			if err != nil {
				return err
			}
			if d := described[args[0]]; len(d.Members) > 0 {
				return fmt.Errorf("group %s has %d active members; stop them before resetting offsets", args[0], len(d.Members))
			}
			var listed kadm.ListedOffsets
			switch {
			case to == "earliest":
				listed, err = adm.ListStartOffsets(ctx, topic)
			case to == "latest":
				listed, err = adm.ListEndOffsets(ctx, topic)
			default:
				if off, perr := strconv.ParseInt(to, 10, 64); perr == nil {
					listed, err = adm.ListEndOffsets(ctx, topic)
					for _, ps := range listed {
						for p, o := range ps {
							o.Offset = off
							ps[p] = o
						}
					}
					break
				}
				ts, perr := time.Parse(time.RFC3339, to)
				if perr != nil {
					return fmt.Errorf("--to %q: want earliest, latest, an offset or an RFC 3339 time", to)
				}
				listed, err = adm.ListOffsetsAfterMilli(ctx, ts.UnixMilli(), topic)
			}
			if err != nil {
				return err
			}
			if err := listed.Error(); err != nil {
				return err
			}
			resp, err := adm.CommitOffsets(ctx, args[0], listed.Offsets())
			if err != nil {
				return err
			}
			if err := resp.Error(); err != nil {
				return err
			}
			resp.Each(func(o kadm.OffsetResponse) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s[%d] -> %d\n", o.Topic, o.Partition, o.At)
			})
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic whose offsets to move")
	cmd.Flags().StringVar(&to, "to", "earliest", "earliest, latest, an offset, or an RFC 3339 time")
	return cmd
}

func newGroupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete empty groups and their committed offsets",
		Args:  cobra.MinimumNArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			resps, err := adm.DeleteGroups(ctx, args...)
			if err != nil {
				return err
			}
			var failed error
			for _, r := range resps.Sorted() {
				if r.Err != nil {
					failed = fmt.Errorf("delete %s: %w", r.Group, r.Err)
					fmt.Fprintln(cmd.ErrOrStderr(), failed)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", r.Group)
			}
			return failed
		}),
	}
}
