package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/strand-data/strand/test/harness"
)

// strand runs the CLI binary against node with the given environment and stdin.
func strand(t *testing.T, env []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func TestCLIRoundTrip(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr} // every command finds the broker through the environment
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := strand(t, env, stdin, args...)
		if err != nil {
			t.Fatalf("strand %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	must("", "topic", "create", "events", "--partitions", "3", "--config", "retention.ms=60000")
	if out, _, err := strand(t, env, "", "topic", "create", "events"); err == nil {
		t.Fatalf("creating an existing topic succeeded: %s", out)
	}
	must("a:1\nb:2\nc:3\n", "produce", "events", "--key-separator", ":", "--partition", "1", "--header", "src=test")
	out := must("", "consume", "events", "--from", "beginning", "--count", "3", "--format", "json")
	var got []consumedRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r consumedRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("consume output %q: %v", line, err)
		}
		got = append(got, r)
	}
	if len(got) != 3 || got[0].Key != "a" || got[2].Value != "3" || got[1].Partition != 1 || got[1].Offset != 1 || got[0].Headers["src"] != "test" {
		t.Fatalf("consumed %+v", got)
	}
	out = must("", "consume", "events", "--from", "1", "--partition", "1", "--count", "2", "--template", "{{.Key}}={{.Value}}@{{.Offset}}")
	if out != "b=2@1\nc=3@2\n" {
		t.Fatalf("template output %q", out)
	}
	var desc struct {
		Partitions []struct {
			Partition int32 `json:"partition"`
			End       int64 `json:"high_watermark"`
		} `json:"partitions"`
		Configs map[string]string `json:"configs"`
	}
	if err := json.Unmarshal([]byte(must("", "topic", "describe", "events", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.Partitions) != 3 || desc.Partitions[1].End != 3 || desc.Configs["retention.ms"] != "60000" {
		t.Fatalf("describe %+v", desc)
	}
	must("", "topic", "alter-config", "events", "--set", "cleanup.policy=compact", "--delete", "retention.ms")
	if err := json.Unmarshal([]byte(must("", "topic", "describe", "events", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Configs["cleanup.policy"] != "compact" || desc.Configs["retention.ms"] != "604800000" {
		t.Fatalf("after alter-config %+v", desc.Configs)
	}
	if out := must("", "topic", "list"); !strings.Contains(out, "events") || !strings.Contains(out, "PARTITIONS") {
		t.Fatalf("list %q", out)
	}
	var info struct {
		ClusterID string `json:"cluster_id"`
		Brokers   []struct {
			ID int32 `json:"id"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal([]byte(must("", "cluster", "info", "--format", "json")), &info); err != nil || info.ClusterID == "" || len(info.Brokers) != 1 {
		t.Fatalf("cluster info %+v %v", info, err)
	}
	must("", "topic", "delete", "events")
	if _, _, err := strand(t, env, "", "topic", "describe", "events"); err == nil {
		t.Fatal("describe of a deleted topic succeeded")
	}
}

func TestCLIErrors(t *testing.T) {
	if _, errOut, err := strand(t, []string{"STRAND_FORMAT=yaml"}, "", "topic", "list", "--brokers", "127.0.0.1:1"); err == nil || !strings.Contains(errOut, "yaml") {
		t.Fatalf("bad --format from the environment: %v %q", err, errOut)
	}
	if _, errOut, err := strand(t, []string{"STRAND_NODE_ID=abc"}, "", "serve"); err == nil || !strings.Contains(errOut, "STRAND_NODE_ID") {
		t.Fatalf("bad env value: %v %q", err, errOut)
	}
	if _, errOut, err := strand(t, nil, "", "serve", "--fsync", "sometimes"); err == nil || !strings.Contains(errOut, "fsync") {
		t.Fatalf("bad --fsync: %v %q", err, errOut)
	}
}

func TestCLIGroups(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := strand(t, env, "", args...)
		if err != nil {
			t.Fatalf("strand %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	must("topic", "create", "lagging", "--partitions", "2")
	if _, errOut, err := strand(t, env, "1\n2\n3\n4\n", "produce", "lagging", "--partition", "0"); err != nil {
		t.Fatal(errOut)
	}
	// A group that only commits offsets (no members), as tools and Kafka Connect do.
	adm := kadm.NewClient(node.Client(t))
	ctx := harness.Context(t, time.Minute)
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "lagging", Partition: 0, At: 1})
	if resp, err := adm.CommitOffsets(ctx, "reporting", commit); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if out := must("group", "list"); !strings.Contains(out, "reporting") {
		t.Fatalf("group list: %q", out)
	}
	var desc struct {
		Offsets []lagRow `json:"offsets"`
	}
	if err := json.Unmarshal([]byte(must("group", "describe", "reporting", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.Offsets) != 1 || desc.Offsets[0].Committed != 1 || desc.Offsets[0].End != 4 || desc.Offsets[0].Lag != 3 {
		t.Fatalf("describe: %+v", desc)
	}
	resp, err := http.Get("http://" + node.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `strand_consumer_group_lag{group="reporting",partition="0",topic="lagging"} 3`) {
		t.Fatalf("lag metric missing:\n%s", grepLines(string(metrics), "consumer_group"))
	}
	must("group", "reset-offsets", "reporting", "--topic", "lagging", "--to", "latest")
	if err := json.Unmarshal([]byte(must("group", "describe", "reporting", "--format", "json")), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Offsets[0].Lag != 0 || desc.Offsets[0].Committed != 4 {
		t.Fatalf("after reset to latest: %+v", desc)
	}
	must("group", "delete", "reporting")
	if out := must("group", "list"); strings.Contains(out, "reporting") {
		t.Fatalf("group still listed after delete: %q", out)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
