package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sessionFetch(id, epoch int32, topic string, partitions ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.SessionID, req.SessionEpoch, req.MaxBytes, req.MinBytes = id, epoch, 1<<20, 0
	if len(partitions) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for _, p := range partitions {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func TestFetchSessions(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "sess", 3, nil)
	full := request[*kmsg.FetchResponse](t, cl, sessionFetch(0, 0, "sess", 0, 1, 2))
	if full.ErrorCode != 0 || full.SessionID == 0 || len(full.Topics) != 1 || len(full.Topics[0].Partitions) != 3 {
		t.Fatalf("full fetch creating a session: %+v", full)
	}
	id := full.SessionID
	// Nothing changed: the incremental answer names no partition.
	inc := request[*kmsg.FetchResponse](t, cl, sessionFetch(id, 1, "sess"))
	if inc.ErrorCode != 0 || inc.SessionID != id || len(inc.Topics) != 0 {
		t.Fatalf("idle incremental fetch: %+v", inc)
	}
	// A record in partition 1: only partition 1 comes back, with it.
	if r := produceRawTo(t, cl, "sess", 1, idemBatch(t, -1, -1, -1, 2)); r.ErrorCode != 0 {
		t.Fatalf("produce %+v", r)
	}
	inc = request[*kmsg.FetchResponse](t, cl, sessionFetch(id, 2, "sess"))
	if len(inc.Topics) != 1 || len(inc.Topics[0].Partitions) != 1 || inc.Topics[0].Partitions[0].Partition != 1 ||
		len(inc.Topics[0].Partitions[0].RecordBatches) == 0 || inc.Topics[0].Partitions[0].HighWatermark != 2 {
		t.Fatalf("incremental fetch after a produce: %+v", inc)
	}
	// Forgetting partition 1 and moving on: the session no longer reports it.
	forget := sessionFetch(id, 3, "sess")
	ft := kmsg.NewFetchRequestForgottenTopic()
	ft.Topic, ft.Partitions = "sess", []int32{1}
	forget.ForgottenTopics = append(forget.ForgottenTopics, ft)
	if inc = request[*kmsg.FetchResponse](t, cl, forget); inc.ErrorCode != 0 || len(inc.Topics) != 0 {
		t.Fatalf("after forgetting: %+v", inc)
	}
	if bad := request[*kmsg.FetchResponse](t, cl, sessionFetch(id, 9, "sess")); bad.ErrorCode != 71 { // INVALID_FETCH_SESSION_EPOCH
		t.Fatalf("wrong epoch: %+v", bad)
	}
	if bad := request[*kmsg.FetchResponse](t, cl, sessionFetch(id+1, 1, "sess")); bad.ErrorCode != 70 { // FETCH_SESSION_ID_NOT_FOUND
		t.Fatalf("unknown session: %+v", bad)
	}
	// Closing the session (epoch -1) answers a full, sessionless fetch.
	if closed := request[*kmsg.FetchResponse](t, cl, sessionFetch(id, -1, "sess", 0)); closed.SessionID != 0 || len(closed.Topics) != 1 {
		t.Fatalf("closing fetch: %+v", closed)
	}
	if bad := request[*kmsg.FetchResponse](t, cl, sessionFetch(id, 4, "sess")); bad.ErrorCode != 70 {
		t.Fatalf("closed session still usable: %+v", bad)
	}
	// Epoch 0 with an existing id (a client resetting its session, as franz-go does after
	// an error) closes that session and opens a new one.
	second := request[*kmsg.FetchResponse](t, cl, sessionFetch(0, 0, "sess", 0)).SessionID
	reset := request[*kmsg.FetchResponse](t, cl, sessionFetch(second, 0, "sess", 0, 2))
	if reset.ErrorCode != 0 || reset.SessionID == 0 || reset.SessionID == second || len(reset.Topics[0].Partitions) != 2 {
		t.Fatalf("reset to epoch 0: %+v", reset)
	}
	if bad := request[*kmsg.FetchResponse](t, cl, sessionFetch(second, 1, "sess")); bad.ErrorCode != 70 {
		t.Fatalf("the replaced session is still usable: %+v", bad)
	}
}
