// Command strand runs a Strand node and talks to one: `strand serve` starts a broker;
// topic, produce, consume and cluster commands are Kafka clients (franz-go, DESIGN D2).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "strand:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "strand",
		Short:         "Strand: a log-centric data platform that speaks Kafka",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return bindEnv(cmd)
		},
	}
	root.PersistentFlags().String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap addresses")
	root.PersistentFlags().String("format", "table", "output: table for people, json for programs")
	addClientSecurityFlags(root.PersistentFlags())
	root.AddCommand(newServeCmd(), newTopicCmd(), newProduceCmd(), newConsumeCmd(), newGroupCmd(), newTxnCmd(), newClusterCmd(), newBenchCmd(), newDebugCmd(), newUserCmd())
	return root
}
