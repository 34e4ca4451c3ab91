package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage SCRAM users (credentials are stored salted; never the password)"}
	var passwordStdin bool
	var mechanisms []string
	var iterations int32
	create := &cobra.Command{
		Use:   "create NAME --password-stdin",
		Short: "Create a user, or set a new password for one",
		Long: `Create a user, or set a new password for one. The password is read from the first line of
standard input; the client salts it and sends only the salted form (KIP-554). With no
--mechanism the user gets credentials for both SCRAM-SHA-256 and SCRAM-SHA-512, which
PLAIN logins are checked against too.`,
		Args: cobra.ExactArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			if !passwordStdin {
				return errors.New("give the password on standard input with --password-stdin")
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			var upserts []kadm.UpsertSCRAM
			for _, name := range mechanisms {
				m, err := parseScramMechanism(name)
				if err != nil {
					return err
				}
				upserts = append(upserts, kadm.UpsertSCRAM{User: args[0], Mechanism: m, Iterations: iterations, Password: password})
			}
			altered, err := adm.AlterUserSCRAMs(ctx, nil, upserts)
			if err != nil {
				return fmt.Errorf("create user %s: %w", args[0], err)
			}
			return reportAltered(cmd, altered, "created", asJSON)
		}),
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().StringSliceVar(&mechanisms, "mechanism", []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}, "SCRAM-SHA-256 and/or SCRAM-SHA-512")
	create.Flags().Int32Var(&iterations, "iterations", 4096, "PBKDF2 iterations (4096 to 16384)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their SCRAM mechanisms",
		Args:  cobra.NoArgs,
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			described, err := adm.DescribeUserSCRAMs(ctx)
			if err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			type row struct {
				User       string   `json:"user"`
				Mechanisms []string `json:"mechanisms"`
				Iterations []int32  `json:"iterations"`
			}
			var rows []row
			for _, d := range described.Sorted() {
				if d.Err != nil {
					return fmt.Errorf("user %s: %w", d.User, d.Err)
				}
				r := row{User: d.User}
				for _, c := range d.CredInfos {
					r.Mechanisms = append(r.Mechanisms, c.Mechanism.String())
					r.Iterations = append(r.Iterations, c.Iterations)
				}
				rows = append(rows, r)
			}
			if asJSON {
				return printJSON(rows)
			}
			var table [][]string
			for _, r := range rows {
				var its []string
				for _, i := range r.Iterations {
					its = append(its, strconv.Itoa(int(i)))
				}
				table = append(table, []string{r.User, strings.Join(r.Mechanisms, ","), strings.Join(its, ",")})
			}
			printTable(cmd.OutOrStdout(), []string{"USER", "MECHANISMS", "ITERATIONS"}, table)
			return nil
		}),
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user's SCRAM credentials",
		Args:  cobra.ExactArgs(1),
		RunE: withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *kadm.Client, asJSON bool) error {
			described, err := adm.DescribeUserSCRAMs(ctx, args[0])
			if err != nil {
				return fmt.Errorf("delete user %s: %w", args[0], err)
			}
			d := described[args[0]]
			if d.Err != nil {
				return fmt.Errorf("delete user %s: %w", args[0], d.Err)
			}
			var dels []kadm.DeleteSCRAM
			for _, c := range d.CredInfos {
				dels = append(dels, kadm.DeleteSCRAM{User: args[0], Mechanism: c.Mechanism})
			}
			altered, err := adm.AlterUserSCRAMs(ctx, dels, nil)
			if err != nil {
				return fmt.Errorf("delete user %s: %w", args[0], err)
			}
			return reportAltered(cmd, altered, "deleted", asJSON)
		}),
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func parseScramMechanism(name string) (kadm.ScramMechanism, error) {
	switch strings.ToUpper(name) {
	case "SCRAM-SHA-256":
		return kadm.ScramSha256, nil
	case "SCRAM-SHA-512":
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", name)
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}

func reportAltered(cmd *cobra.Command, altered kadm.AlteredUserSCRAMs, verb string, asJSON bool) error {
	for _, a := range altered.Sorted() {
		if a.Err != nil {
			msg := a.ErrMessage
			if msg == "" {
				msg = a.Err.Error()
			}
			return fmt.Errorf("user %s: %s: %w", a.User, msg, a.Err)
		}
		if asJSON {
			if err := printJSON(map[string]string{"user": a.User, "result": verb}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s %s\n", a.User, verb)
	}
	return nil
}
