package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newClient builds a franz-go client for the --brokers of cmd.
func newClient(cmd *cobra.Command, opts ...kgo.Opt) (*kgo.Client, error) {
	brokers, _ := cmd.Flags().GetString("brokers")
	var seeds []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("--brokers is empty")
	}
	security, err := clientSecurityOpts(cmd)
	if err != nil {
		return nil, err
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RequestTimeoutOverhead(5 * time.Second)}, security...)
	return kgo.NewClient(append(base, opts...)...)
}

// openAdmin returns an admin client and a context bounding the command; done releases both.
func openAdmin(cmd *cobra.Command) (*kadm.Client, context.Context, func(), error) {
	cl, err := newClient(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	return kadm.NewClient(cl), ctx, func() { cancel(); cl.Close() }, nil
}

func jsonOutput(cmd *cobra.Command) (bool, error) {
	format, _ := cmd.Flags().GetString("format")
	switch format {
	case "json":
		return true, nil
	case "table", "":
		return false, nil
	}
	return false, fmt.Errorf("--format %q: want table or json", format)
}

// printTable writes rows under a header, aligned for people.
func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withAdmin runs a command body with the output format, an admin client and the command's
// deadline, releasing the client when the body returns.
func withAdmin(fn func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		asJSON, err := jsonOutput(cmd)
		if err != nil {
			return err
		}
		adm, ctx, done, err := openAdmin(cmd)
		if err != nil {
			return err
		}
		defer done()
		return fn(cmd, args, ctx, adm, asJSON)
	}
}
