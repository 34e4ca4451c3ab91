package main

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
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
	return cmd
}

// signalContext ends on SIGINT or SIGTERM, so long-running client commands stop cleanly.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
