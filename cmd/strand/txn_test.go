package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestCLITransactions: a transaction left open (its producer gone, its timeout far away)
// holds a partition's last stable offset back; strand txn list, describe and producers
// show it, topic describe shows the LSO below the high watermark, and strand txn abort
// ends it, after which the LSO catches up and a read_committed reader skips its records.
func TestCLITransactions(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := strand(t, env, "", args...)
		if err != nil {
			t.Fatalf("strand %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	must("topic", "create", "hang", "--partitions", "1")

	// A committed transaction, then one left open.
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr), kgo.TransactionalID("cli-txn"), kgo.DefaultProduceTopic("hang"),
		kgo.TransactionTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, commit := range []bool{true, false} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The open transaction starts after the first's record and marker: offset 2.

	var listed []struct {
		ID    string `json:"transactional_id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(must("txn", "list", "--format", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != "cli-txn" || listed[0].State != "Ongoing" {
		t.Fatalf("txn list: %+v", listed)
	}
	var described struct {
		State      string             `json:"state"`
		Partitions map[string][]int32 `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(must("txn", "describe", "cli-txn", "--format", "json")), &described); err != nil {
		t.Fatal(err)
	}
	if described.State != "Ongoing" || len(described.Partitions["hang"]) != 1 {
		t.Fatalf("txn describe: %+v", described)
	}
	var producers []struct {
		Start int64 `json:"current_txn_start_offset"`
	}
	if err := json.Unmarshal([]byte(must("txn", "producers", "--topic", "hang", "--format", "json")), &producers); err != nil {
		t.Fatal(err)
	}
	if len(producers) != 1 || producers[0].Start != 2 {
		t.Fatalf("txn producers: %+v", producers)
	}
	if lso, hw := describedLSO(t, must("topic", "describe", "hang", "--format", "json")); lso != 2 || hw != 3 {
		t.Fatalf("topic describe: last stable offset %d, high watermark %d; want 2 and 3", lso, hw)
	}
	if out, _, err := strand(t, env, "", "txn", "abort", "--topic", "hang", "--partition", "0", "--start-offset", "1"); err == nil {
		t.Fatalf("abort at an offset where no transaction starts succeeded: %s", out)
	}

	// The producer goes away without ending its transaction (Close sends no EndTxn); the
	// operator aborts it.
	cl.Close()
	must("txn", "abort", "--topic", "hang", "--partition", "0", "--start-offset", "2")
	if lso, hw := describedLSO(t, must("topic", "describe", "hang", "--format", "json")); lso != hw || hw != 4 {
		t.Fatalf("after abort: last stable offset %d, high watermark %d; want both 4", lso, hw)
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr), kgo.ConsumeTopics("hang"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var values []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		reader.PollFetches(pctx).EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		pcancel()
		if len(values) > 0 {
			break
		}
	}
	if len(values) != 1 || values[0] != "a" {
		t.Fatalf("read_committed after the abort read %q, want only the committed %q", values, "a")
	}
}

// describedLSO reads partition 0's last stable offset and high watermark from topic
// describe's JSON.
func describedLSO(t *testing.T, out string) (lso, hw int64) {
	t.Helper()
	var d struct {
		Partitions []struct {
			HW  int64 `json:"high_watermark"`
			LSO int64 `json:"last_stable_offset"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || len(d.Partitions) == 0 {
		t.Fatalf("topic describe output %q: %v", out, err)
	}
	return d.Partitions[0].LSO, d.Partitions[0].HW
}
