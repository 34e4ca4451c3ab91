package main

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

func TestParseReplicaAssignment(t *testing.T) {
	got, err := parseReplicaAssignment("1:2:3,2:3:1")
	if want := [][]int32{{1, 2, 3}, {2, 3, 1}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("1:2:3,2:3:1: %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "1:x", "1,,2", "1:"} {
		if got, err := parseReplicaAssignment(bad); err == nil {
			t.Errorf("%q parsed as %v", bad, got)
		}
	}
}

// `strand topic create --replica-assignment` places replicas as kafka-topics does; the
// broker checks the assignment.
func TestTopicCreateReplicaAssignment(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr}
	if out, errOut, err := strand(t, env, "", "topic", "create", "placed", "--replica-assignment", "1,1,1"); err != nil {
		t.Fatalf("create with a valid assignment: %v\n%s%s", err, out, errOut)
	}
	for _, bad := range []struct{ assignment, want string }{
		{"1:1", "INVALID_REPLICA_ASSIGNMENT"},
		{"1:2", "INVALID_REPLICA_ASSIGNMENT"},
	} {
		out, errOut, err := strand(t, env, "", "topic", "create", "refused", "--replica-assignment", bad.assignment)
		if err == nil || !strings.Contains(errOut, bad.want) {
			t.Errorf("--replica-assignment %s: err %v, stderr %q; want %s", bad.assignment, err, errOut+out, bad.want)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(context.Background(), "placed", "refused")
	if err != nil {
		t.Fatal(err)
	}
	if p := td["placed"].Partitions; len(p) != 3 || p.NumReplicas() != 1 {
		t.Fatalf("placed: %d partitions of %d replicas, want 3 of 1", len(p), p.NumReplicas())
	}
	if td["refused"].Err == nil {
		t.Fatal("a refused assignment created the topic")
	}
}
