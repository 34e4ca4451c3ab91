package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strand-data/strand/test/harness"
)

func TestCLIClusterNodesAndPartitions(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, err := strand(t, env, "", args...)
		if err != nil {
			t.Fatalf("strand %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	run("topic", "create", "health", "--partitions", "2")
	var nodes []nodeRow
	if err := json.Unmarshal([]byte(run("cluster", "nodes", "--http-addr", node.HTTPAddr, "--format", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || !nodes[0].Controller || nodes[0].Fenced == nil || *nodes[0].Fenced || nodes[0].KafkaAddr != node.KafkaAddr {
		t.Fatalf("nodes %+v", nodes)
	}
	if out := run("cluster", "nodes", "--http-addr", node.HTTPAddr); !strings.Contains(out, "live") || !strings.Contains(out, "CONTROLLER") {
		t.Fatalf("nodes table %q", out)
	}
	// Without the HTTP listener the live brokers still come from Kafka Metadata.
	out, errOut, err := strand(t, env, "", "cluster", "nodes", "--http-addr", "127.0.0.1:1", "--format", "json")
	if err != nil || !strings.Contains(errOut, "warning") {
		t.Fatalf("nodes without HTTP: %v %q", err, errOut)
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 || nodes[0].Fenced != nil {
		t.Fatalf("nodes without HTTP %+v %v", nodes, err)
	}
	var parts []partitionRow
	if err := json.Unmarshal([]byte(run("cluster", "partitions", "--format", "json")), &parts); err != nil {
		t.Fatal(err)
	}
	health := 0
	for _, p := range parts {
		if p.Topic == "health" {
			health++
			if p.Leader != nodes[0].ID || p.Offline || p.UnderReplicated || len(p.ISR) != 1 {
				t.Fatalf("partition %+v", p)
			}
		}
	}
	if health != 2 {
		t.Fatalf("%d partitions of health listed: %+v", health, parts)
	}
	if err := json.Unmarshal([]byte(run("cluster", "partitions", "--under-replicated", "--format", "json")), &parts); err != nil || len(parts) != 0 {
		t.Fatalf("under-replicated on a healthy node: %+v %v", parts, err)
	}
	// A move to the replica set it already has completes at once; there is then nothing
	// to cancel, and a broker that does not exist is refused.
	run("cluster", "reassign", "health", "1", "--replicas", "1")
	var moves []reassignmentRow
	if err := json.Unmarshal([]byte(run("cluster", "reassignments", "--format", "json")), &moves); err != nil || len(moves) != 0 {
		t.Fatalf("reassignments %+v %v", moves, err)
	}
	if _, errOut, err := strand(t, env, "", "cluster", "reassign", "health", "1", "--cancel"); err == nil || !strings.Contains(errOut, "NO_REASSIGNMENT_IN_PROGRESS") {
		t.Fatalf("cancel with nothing in progress: %v %q", err, errOut)
	}
	if _, errOut, err := strand(t, env, "", "cluster", "reassign", "health", "1", "--replicas", "1,9"); err == nil || !strings.Contains(errOut, "INVALID_REPLICA_ASSIGNMENT") {
		t.Fatalf("reassign to an unknown broker: %v %q", err, errOut)
	}
}
