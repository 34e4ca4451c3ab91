package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createAssigned sends CreateTopics with a manual assignment (partition i: assignment[i])
// and the given partition count and replication factor.
func createAssigned(t *testing.T, cl *kgo.Client, topic string, partitions int32, rf int16, assignment map[int32][]int32) kmsg.CreateTopicsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	for p, replicas := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = p, replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	req.Topics = append(req.Topics, rt)
	return request[*kmsg.CreateTopicsResponse](t, cl, req).Topics[0]
}

func addAssigned(t *testing.T, cl *kgo.Client, topic string, total int32, assignment ...[]int32) kmsg.CreatePartitionsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, total
	rt.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{}
	for _, replicas := range assignment {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = replicas
		rt.Assignment = append(rt.Assignment, a)
	}
	req.Topics = append(req.Topics, rt)
	return request[*kmsg.CreatePartitionsResponse](t, cl, req).Topics[0]
}

// Manual replica assignment in CreateTopics and CreatePartitions on three nodes: Kafka
// accepts a valid one (replicas exactly as given, the first live replica leads) and refuses
// the others with the controller's codes (ReplicationControlManager.createTopic and
// validateManualPartitionAssignment in metadata/…/controller; messages as
// PlaintextAdminIntegrationTest asserts them).
func TestManualReplicaAssignment(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	adm := kadm.NewClient(cl)
	ctx := testContext(t)

	refused := []struct {
		name       string
		partitions int32
		rf         int16
		assignment map[int32][]int32
		want       int16
	}{
		{"count given too", 2, -1, map[int32][]int32{0: {1, 2}, 1: {2, 3}}, kerr.InvalidRequest.Code},
		{"replication factor given too", -1, 2, map[int32][]int32{0: {1, 2}}, kerr.InvalidRequest.Code},
		{"broker twice", -1, -1, map[int32][]int32{0: {1, 1}}, kerr.InvalidReplicaAssignment.Code},
		{"unknown broker", -1, -1, map[int32][]int32{0: {1, 9}}, kerr.InvalidReplicaAssignment.Code},
		{"replica counts differ", -1, -1, map[int32][]int32{0: {1, 2}, 1: {3}}, kerr.InvalidReplicaAssignment.Code},
		{"partition ids not from 0", -1, -1, map[int32][]int32{1: {1}, 2: {2}}, kerr.InvalidReplicaAssignment.Code},
		{"no replicas", -1, -1, map[int32][]int32{0: {}}, kerr.InvalidReplicaAssignment.Code},
	}
	for _, tc := range refused {
		if got := createAssigned(t, cl, "refused", tc.partitions, tc.rf, tc.assignment); got.ErrorCode != tc.want {
			t.Errorf("%s: code %d (%v), want %d", tc.name, got.ErrorCode, msg(got.ErrorMessage), tc.want)
		}
	}
	if _, ok := c.brokers[0].meta.State().Topics["refused"]; ok {
		t.Fatal("a refused assignment created the topic")
	}

	want := map[int32][]int32{0: {2, 3, 1}, 1: {3, 1, 2}}
	if got := createAssigned(t, cl, "manual", -1, -1, want); got.ErrorCode != 0 || got.NumPartitions != 2 || got.ReplicationFactor != 3 {
		t.Fatalf("valid assignment: code %d (%v), %d partitions, RF %d", got.ErrorCode, msg(got.ErrorMessage), got.NumPartitions, got.ReplicationFactor)
	}
	if got := addAssigned(t, cl, "manual", 3, []int32{1, 2}); got.ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Errorf("CreatePartitions with 2 replicas where the topic has 3: code %d, want INVALID_REPLICA_ASSIGNMENT", got.ErrorCode)
	}
	if got := addAssigned(t, cl, "manual", 4, []int32{1, 2, 3}); got.ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Errorf("CreatePartitions adding 2 with 1 assignment: code %d, want INVALID_REPLICA_ASSIGNMENT", got.ErrorCode)
	}
	if got := addAssigned(t, cl, "manual", 3, []int32{1, 2, 3}); got.ErrorCode != 0 {
		t.Fatalf("CreatePartitions with a valid assignment: code %d (%v)", got.ErrorCode, msg(got.ErrorMessage))
	}
	want[2] = []int32{1, 2, 3}

	// Every node's metadata holds the assignment as given; the first replica leads.
	deadline := time.Now().Add(20 * time.Second)
	for {
		td, err := adm.ListTopics(ctx, "manual")
		if err != nil {
			t.Fatal(err)
		}
		ok := len(td["manual"].Partitions) == len(want)
		for _, p := range td["manual"].Partitions {
			ok = ok && slices.Equal(p.Replicas, want[p.Partition]) && p.Leader == want[p.Partition][0] && len(p.ISR) == 3
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the topic's partitions are %+v, want replicas %v led by the first", td["manual"].Partitions, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Each partition takes writes on its assigned leader, acknowledged by all three.
	for p := int32(0); p < 3; p++ {
		r := &kgo.Record{Topic: "manual", Partition: p, Value: []byte("v")}
		if err := c.client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
}

func msg(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
