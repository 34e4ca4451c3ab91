package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/strand-data/strand/internal/cluster"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show the cluster id, controller and brokers",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			m, err := adm.BrokerMetadata(ctx)
			if err != nil {
				return err
			}
			type broker struct {
				ID   int32  `json:"id"`
				Host string `json:"host"`
				Port int32  `json:"port"`
			}
			out := struct {
				ClusterID  string   `json:"cluster_id"`
				Controller int32    `json:"controller"`
				Brokers    []broker `json:"brokers"`
			}{ClusterID: m.Cluster, Controller: m.Controller}
			var rows [][]string
			for _, b := range m.Brokers {
				out.Brokers = append(out.Brokers, broker{b.NodeID, b.Host, b.Port})
				rows = append(rows, []string{strconv.Itoa(int(b.NodeID)), b.Host, strconv.Itoa(int(b.Port))})
			}
			if asJSON {
				return printJSON(out)
			}
			w := cmd.OutOrStdout()
			printTable(w, []string{"CLUSTER", "CONTROLLER"}, [][]string{{out.ClusterID, strconv.Itoa(int(out.Controller))}})
			w.Write([]byte("\n"))
			printTable(w, []string{"BROKER", "HOST", "PORT"}, rows)
			return nil
		}),
	})
	cmd.AddCommand(newClusterNodesCmd(), newClusterPartitionsCmd(), newClusterReassignCmd(), newClusterReassignmentsCmd())
	return cmd
}

// signalContext ends on SIGINT or SIGTERM, so long-running client commands stop cleanly.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// fetchState reads a node's metadata State from its HTTP listener (GET /v1/cluster): the
// Kafka Metadata API leaves fenced brokers out, the node's own copy does not.
func fetchState(ctx context.Context, httpAddr string) (*cluster.State, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	var s cluster.State
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("GET /v1/cluster: %w", err)
	}
	return &s, nil
}

type nodeRow struct {
	ID           int32  `json:"id"`
	KafkaAddr    string `json:"kafka_addr"`
	HTTPAddr     string `json:"http_addr,omitempty"`
	Controller   bool   `json:"controller"`
	Fenced       *bool  `json:"fenced"` // null when the HTTP listener could not be asked
	ShuttingDown bool   `json:"shutting_down"`
}

func newClusterNodesCmd() *cobra.Command {
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the brokers: Kafka address, controller, fenced",
		Long: "List the brokers. The controller and the live brokers come from Kafka Metadata; fenced\n" +
			"brokers, which Metadata leaves out, from the node's metadata copy at --http-addr.",
		Args: cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			m, err := adm.BrokerMetadata(ctx)
			if err != nil {
				return err
			}
			var rows []nodeRow
			if s, err := fetchState(ctx, httpAddr); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: fenced brokers unknown (%v); listing the live ones\n", err)
				for _, b := range m.Brokers {
					rows = append(rows, nodeRow{ID: b.NodeID, KafkaAddr: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), Controller: b.NodeID == m.Controller})
				}
			} else {
				for _, b := range s.Brokers {
					fenced := b.Fenced
					rows = append(rows, nodeRow{ID: b.ID, KafkaAddr: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), HTTPAddr: b.HTTPAddr,
						Controller: b.ID == m.Controller, Fenced: &fenced, ShuttingDown: b.ShuttingDown})
				}
			}
			slices.SortFunc(rows, func(a, b nodeRow) int { return cmp.Compare(a.ID, b.ID) })
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				status := "?"
				switch {
				case r.Fenced == nil:
				case *r.Fenced:
					status = "fenced"
				case r.ShuttingDown:
					status = "shutting-down"
				default:
					status = "live"
				}
				table = append(table, []string{strconv.Itoa(int(r.ID)), r.KafkaAddr, yesNo(r.Controller), status})
			}
			printTable(cmd.OutOrStdout(), []string{"ID", "KAFKA", "CONTROLLER", "STATUS"}, table)
			return nil
		}),
	}
	cmd.Flags().StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "HTTP address of a node, for fenced brokers")
	return cmd
}

type partitionRow struct {
	Topic           string  `json:"topic"`
	Partition       int32   `json:"partition"`
	Leader          int32   `json:"leader"`
	LeaderEpoch     int32   `json:"leader_epoch"`
	Replicas        []int32 `json:"replicas"`
	ISR             []int32 `json:"isr"`
	UnderReplicated bool    `json:"under_replicated"`
	Offline         bool    `json:"offline"`
}

func newClusterPartitionsCmd() *cobra.Command {
	var underReplicated bool
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "List partitions with leader, replicas, ISR; --under-replicated for the unhealthy ones",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			topics, err := adm.ListTopicsWithInternal(ctx)
			if err != nil {
				return err
			}
			var rows []partitionRow
			for _, t := range topics.Sorted() {
				if t.Err != nil {
					return fmt.Errorf("topic %s: %w", t.Topic, t.Err)
				}
				for _, p := range t.Partitions.Sorted() {
					r := partitionRow{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
						Replicas: p.Replicas, ISR: p.ISR, UnderReplicated: len(p.ISR) < len(p.Replicas), Offline: p.Leader < 0}
					if underReplicated && !r.UnderReplicated && !r.Offline {
						continue
					}
					rows = append(rows, r)
				}
			}
			if asJSON {
				if rows == nil {
					rows = []partitionRow{}
				}
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				status := "ok"
				switch {
				case r.Offline:
					status = "offline"
				case r.UnderReplicated:
					status = "under-replicated"
				}
				table = append(table, []string{r.Topic, strconv.Itoa(int(r.Partition)), strconv.Itoa(int(r.Leader)),
					ids(r.Replicas), ids(r.ISR), status})
			}
			printTable(cmd.OutOrStdout(), []string{"TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "STATUS"}, table)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&underReplicated, "under-replicated", false, "only partitions whose ISR is smaller than their replicas, or that have no leader")
	return cmd
}

func ids(v []int32) string {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newClusterReassignCmd() *cobra.Command {
	var replicas string
	var cancel bool
	cmd := &cobra.Command{
		Use:   "reassign TOPIC PARTITION",
		Short: "Move a partition to other brokers (--replicas 2,3,4; the first is the preferred leader) or --cancel a move",
		Args:  cobra.ExactArgs(2),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			partition, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("partition %q: %w", args[1], err)
			}
			var req kadm.AlterPartitionAssignmentsReq
			switch {
			case cancel && replicas != "":
				return fmt.Errorf("--replicas and --cancel exclude each other")
			case cancel:
				req.CancelAssign(args[0], int32(partition))
			default:
				var target []int32
				for _, f := range strings.Split(replicas, ",") {
					id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
					if err != nil {
						return fmt.Errorf("--replicas %q: want broker ids like 1,2,3", replicas)
					}
					target = append(target, int32(id))
				}
				req.Assign(args[0], int32(partition), target)
			}
			resps, err := adm.AlterPartitionAssignments(ctx, req)
			if err != nil {
				return err
			}
			for _, ps := range resps {
				for _, r := range ps {
					if r.Err != nil {
						return fmt.Errorf("%s-%d: %w %s", r.Topic, r.Partition, r.Err, r.ErrMessage)
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reassignment of %s-%d accepted\n", args[0], partition)
			return nil
		}),
	}
	cmd.Flags().StringVar(&replicas, "replicas", "", "target broker ids, comma-separated")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the reassignment in progress")
	return cmd
}

type reassignmentRow struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
	Adding    []int32 `json:"adding"`
	Removing  []int32 `json:"removing"`
}

func newClusterReassignmentsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reassignments",
		Short: "List the partition reassignments in progress",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			topics, err := adm.ListTopicsWithInternal(ctx)
			if err != nil {
				return err
			}
			listed, err := adm.ListPartitionReassignments(ctx, topics.TopicsSet())
			if err != nil {
				return err
			}
			rows := []reassignmentRow{}
			for _, r := range listed.Sorted() {
				rows = append(rows, reassignmentRow{r.Topic, r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas})
			}
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				table = append(table, []string{r.Topic, strconv.Itoa(int(r.Partition)), ids(r.Replicas), ids(r.Adding), ids(r.Removing)})
			}
			printTable(cmd.OutOrStdout(), []string{"TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"}, table)
			return nil
		}),
	}
}
