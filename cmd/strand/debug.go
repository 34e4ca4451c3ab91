package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strand-data/strand/internal/journal"
)

func newDebugCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "debug", Short: "Tools for looking inside a node's data directory"}
	cmd.AddCommand(newVerifyCmd())
	return cmd
}

// verifyOutput is `debug verify --format json`.
type verifyOutput struct {
	DataDir    string                    `json:"data_dir"`
	Damaged    bool                      `json:"damaged"`
	Partitions []journal.PartitionReport `json:"partitions"`
	Meta       metaReport                `json:"meta"`
}

// errDamaged makes the command exit non-zero after its report is printed.
var errDamaged = errors.New("damage found")

func newVerifyCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every segment, index and checkpoint of a data directory, offline and read-only",
		Long: `Check every partition under --data-dir: each segment batch by batch (length, magic,
CRC-32C, offsets increasing), the offset and time indexes (checksum, trailer, entries at
batch boundaries), the checkpoint, the leader-epoch-checkpoint, producer snapshots and the
cleaner checkpoint; and the metadata store under meta/ (raft log, stable keys, snapshots).
Nothing is opened for writing and nothing is repaired, so it is safe on a running node.

One line per problem: its kind, the file, the byte position and the offsets affected.
  damage        bytes that no clean run or power loss explains; exit status 1
  unclean-stop  a torn tail past the checkpointed recovery point; the next start truncates it
  notice        files an interrupted run left behind that the next start tidies up`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			parts, err := journal.VerifyDataDir(dataDir)
			if err != nil {
				return err
			}
			out := verifyOutput{DataDir: dataDir, Partitions: parts, Meta: verifyMeta(dataDir)}
			for i := range parts {
				out.Damaged = out.Damaged || parts[i].IsDamaged()
			}
			out.Damaged = out.Damaged || len(out.Meta.Problems) > 0
			if asJSON {
				if err := printJSON(out); err != nil {
					return err
				}
			} else {
				printVerify(cmd.OutOrStdout(), out)
			}
			if out.Damaged {
				return errDamaged
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "strand-data", "the node's data directory")
	return cmd
}

func printVerify(w io.Writer, out verifyOutput) {
	var problems []journal.Problem
	for _, p := range out.Partitions {
		problems = append(problems, p.Problems...)
	}
	problems = append(problems, out.Meta.Problems...)
	for _, p := range problems {
		pos := "-"
		if p.Position >= 0 {
			pos = strconv.FormatInt(p.Position, 10)
		}
		fmt.Fprintf(w, "%s\t%s\tpos %s\toffsets %s\t%s\n", strings.ToUpper(p.Kind), p.File, pos, offsetRange(p.FirstOffset, p.LastOffset), p.Detail)
	}
	if len(problems) > 0 {
		fmt.Fprintln(w)
	}
	rows := make([][]string, 0, len(out.Partitions))
	for _, p := range out.Partitions {
		damaged := make([]string, 0, len(p.Damaged))
		for _, d := range p.Damaged {
			damaged = append(damaged, offsetRange(d[0], d[1]))
		}
		status := "ok"
		switch {
		case p.IsDamaged() && len(damaged) == 0:
			status = "DAMAGED (checkpoint or index files, no records)"
		case p.IsDamaged():
			status = "DAMAGED " + strings.Join(damaged, " ")
		}
		rows = append(rows, []string{p.Name, strconv.Itoa(p.Segments), strconv.Itoa(p.Batches), strconv.FormatInt(p.Bytes, 10),
			strconv.FormatInt(p.FirstOffset, 10), strconv.FormatInt(p.LastOffset, 10), strconv.FormatInt(p.RecoveryPoint, 10), status})
	}
	printTable(w, []string{"PARTITION", "SEGMENTS", "BATCHES", "BYTES", "FIRST", "LAST", "RECOVERY-POINT", "STATUS"}, rows)
	fmt.Fprintf(w, "meta: %d raft snapshot(s) checked; %s\n", out.Meta.Snapshots, out.Meta.NotChecked)
}

// offsetRange prints [first, last], with "?" for unknown and "end" for an open end.
func offsetRange(first, last int64) string {
	switch {
	case first < 0:
		return "?"
	case last < 0:
		return fmt.Sprintf("[%d, end]", first)
	}
	return fmt.Sprintf("[%d, %d]", first, last)
}
