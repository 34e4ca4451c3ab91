package broker

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
)

// alterReassignment sends AlterPartitionReassignments at the highest version both sides
// know (v1), so AllowReplicationFactorChange is read.
func alterReassignment(t *testing.T, cl *kgo.Client, allowRF bool, topic string, partition int32, replicas []int32) int16 {
	t.Helper()
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.AllowReplicationFactorChange = allowRF
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = partition, replicas
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.AlterPartitionAssignmentsResponse](t, cl, req)
	return resp.Topics[0].Partitions[0].ErrorCode
}

func TestControllerAdminAPIs(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "moves", 2, nil)
	cases := []struct {
		name      string
		allowRF   bool
		partition int32
		replicas  []int32
		want      int16
	}{
		{"cancel with nothing in progress", false, 0, nil, kerr.NoReassignmentInProgress.Code},
		{"unknown broker", false, 0, []int32{7}, kerr.InvalidReplicaAssignment.Code},
		{"duplicate broker", true, 0, []int32{1, 1}, kerr.InvalidReplicaAssignment.Code},
		{"unknown partition", false, 9, []int32{1}, kerr.UnknownTopicOrPartition.Code},
		{"replication factor change refused", false, 0, []int32{1, 7}, kerr.InvalidReplicationFactor.Code},
		{"replication factor change allowed, unknown broker", true, 0, []int32{1, 7}, kerr.InvalidReplicaAssignment.Code},
		{"same replicas", false, 1, []int32{1}, 0},
	}
	for _, tc := range cases {
		if got := alterReassignment(t, cl, tc.allowRF, "moves", tc.partition, tc.replicas); got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
	list := request[*kmsg.ListPartitionReassignmentsResponse](t, cl, kmsg.NewPtrListPartitionReassignmentsRequest())
	if list.ErrorCode != 0 || len(list.Topics) != 0 {
		t.Fatalf("reassignments listed on a single node: %+v", list)
	}
	unreg := kmsg.NewPtrUnregisterBrokerRequest()
	unreg.BrokerID = 7
	if code := request[*kmsg.UnregisterBrokerResponse](t, cl, unreg).ErrorCode; code != kerr.BrokerIDNotRegistered.Code {
		t.Fatalf("unregistering an unknown broker: code %d", code)
	}
	// Single replicas already lead: a preferred election is not needed, and an unknown
	// partition is reported as such.
	elect := kmsg.NewPtrElectLeadersRequest()
	et := kmsg.NewElectLeadersRequestTopic()
	et.Topic, et.Partitions = "moves", []int32{0, 5}
	elect.Topics = append(elect.Topics, et)
	er := request[*kmsg.ElectLeadersResponse](t, cl, elect)
	if er.ErrorCode != 0 || len(er.Topics) != 1 || len(er.Topics[0].Partitions) != 2 ||
		er.Topics[0].Partitions[0].ErrorCode != kerr.ElectionNotNeeded.Code || er.Topics[0].Partitions[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("elect leaders %+v", er)
	}
	// The node's State is served as JSON next to the internal metadata endpoints.
	resp, err := http.Get("http://" + b.HTTPAddr().String() + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s cluster.State
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.ClusterID == "" || s.Brokers[1].HTTPAddr != b.HTTPAddr().String() || len(s.Topics["moves"].Partitions) != 2 {
		t.Fatalf("GET /v1/cluster: %+v", s)
	}
}
