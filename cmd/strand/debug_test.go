package main

import (
	"encoding/json"
	"errors"
	"hash/crc64"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/cluster/raftstore"
	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/test/harness"
)

// TestDebugVerifyOnServedDataDir writes a data dir with `strand serve`, stops it cleanly and
// runs `strand debug verify` on it: exit 0 when clean; exit 1 with the damaged batch named
// after one byte of a closed segment is flipped.
func TestDebugVerifyOnServedDataDir(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	cl := node.Client(t, kgo.DefaultProduceTopic("audit"), kgo.ProducerLinger(0))
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr}
	if out, errOut, err := strand(t, env, "", "topic", "create", "audit", "--partitions", "1", "--config", "segment.bytes=1024"); err != nil {
		t.Fatalf("create: %v\n%s%s", err, out, errOut)
	}
	ctx := harness.Context(t, time.Minute)
	for i := 0; i < 30; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strings.Repeat("v", 60))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	verify := func(format string) (string, error) {
		out, errOut, err := strand(t, []string{"STRAND_DATA_DIR=" + node.DataDir}, "", "debug", "verify", "--format", format)
		return out + errOut, err
	}
	// On a running node: read-only, and nothing a live log holds is damage.
	if out, err := verify("table"); err != nil || strings.Contains(out, "DAMAGE") {
		t.Fatalf("live dir: %v\n%s", err, out)
	}
	node.Stop(t)

	out, err := verify("table")
	if err != nil || !strings.Contains(out, "audit-0") || strings.Contains(out, "DAMAGE") {
		t.Fatalf("clean dir: %v\n%s", err, out)
	}
	var clean verifyOutput
	out, err = verify("json")
	if err != nil || json.Unmarshal([]byte(out), &clean) != nil || clean.Damaged || len(clean.Partitions) != 1 ||
		clean.Partitions[0].Batches != 30 || clean.Partitions[0].LastOffset != 29 || clean.Partitions[0].Segments < 3 {
		t.Fatalf("clean dir json: %v\n%s", err, out)
	}

	segs, _ := filepath.Glob(filepath.Join(node.DataDir, "audit-0", "*.log"))
	sort.Strings(segs)
	b, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	h, _ := record.ParseHeader(b)
	b[record.HeaderSize+3] ^= 0x40
	if err := os.WriteFile(segs[1], b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = verify("table")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("damaged dir: want exit 1, got %v\n%s", err, out)
	}
	want := "DAMAGE\t" + filepath.Join("audit-0", filepath.Base(segs[1])) + "\tpos 0\toffsets " + offsetRange(h.BaseOffset, h.LastOffset())
	if !strings.Contains(out, want) || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("damaged dir output lacks %q:\n%s", want, out)
	}
	var damaged verifyOutput
	out, _ = verify("json")
	if json.Unmarshal([]byte(strings.TrimSuffix(out, "strand: damage found\n")), &damaged) != nil || !damaged.Damaged ||
		len(damaged.Partitions[0].Damaged) != 1 || damaged.Partitions[0].Damaged[0][0] != h.BaseOffset {
		t.Fatalf("damaged dir json:\n%s", out)
	}
}

func TestVerifyMetaSnapshots(t *testing.T) {
	data := t.TempDir()
	snap := filepath.Join(data, "meta", "snapshots", "2-10-1700000000000")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	state := []byte("the metadata state")
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(state)
	meta, _ := json.Marshal(map[string]any{"ID": "2-10-1700000000000", "Index": 10, "Term": 2, "Size": len(state), "CRC": h.Sum(nil)})
	for name, b := range map[string][]byte{"meta.json": meta, "state.bin": state} {
		if err := os.WriteFile(filepath.Join(snap, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := verifyMeta(data); r.Snapshots != 1 || len(r.Problems) != 0 {
		t.Fatalf("intact snapshot: %+v", r)
	}
	state[0] ^= 1
	if err := os.WriteFile(filepath.Join(snap, "state.bin"), state, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := verifyMeta(data); len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Detail, "CRC-64") {
		t.Fatalf("damaged snapshot: %+v", r)
	}
}

func TestVerifyMetaStore(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "meta", "store")
	s, err := raftstore.Open(dir, raftstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		if err := s.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte("a metadata command")}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if r := verifyMeta(data); len(r.Problems) != 0 {
		t.Fatalf("intact store: %+v", r)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "log-*.seg"))
	b, _ := os.ReadFile(segs[0])
	b[len(b)/2] ^= 1
	os.WriteFile(segs[0], b, 0o644)
	if r := verifyMeta(data); len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Detail, "damaged") {
		t.Fatalf("damaged store: %+v", r)
	}
}
