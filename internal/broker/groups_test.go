package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupSharesPartitionsAndSurvivesRestart: three franz-go members split 12 partitions,
// one leaves and its partitions move, every record is consumed, and committed offsets
// survive a broker restart.
func TestGroupSharesPartitionsAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, stop := startBroker(t, dir)
	admin := client(t, b)
	createTopic(t, admin, "work", 12, nil)
	ctx := testContext(t)
	var mu sync.Mutex
	seen := map[string]int{}
	owned := map[int32]int{} // partition -> member
	revoked := map[int]int{} // member -> partitions revoked from it
	newMember := func(id int) *kgo.Client {
		return client(t, b, kgo.ConsumerGroup("workers"), kgo.ConsumeTopics("work"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond), kgo.DisableAutoCommit(),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				revoked[id] += len(m["work"])
				mu.Unlock()
			}),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				for _, p := range m["work"] {
					owned[p] = id
				}
				mu.Unlock()
			}))
	}
	members := []*kgo.Client{newMember(0), newMember(1), newMember(2)}
	poll := func(cl *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		f := cl.PollFetches(pctx)
		f.EachRecord(func(r *kgo.Record) {
			mu.Lock()
			seen[string(r.Value)]++
			mu.Unlock()
		})
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			t.Logf("commit: %v", err)
		}
	}
	// Let the three members form the group and share the partitions before any record exists.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range members {
			poll(m)
		}
		mu.Lock()
		owners := map[int]bool{}
		for _, m := range owned {
			owners[m] = true
		}
		mu.Unlock()
		if len(owners) == 3 && len(owned) == 12 {
			break
		}
	}
	prod := client(t, b, kgo.DefaultProduceTopic("work"))
	const total = 1200
	for i := 0; i < total; i++ {
		prod.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(45 * time.Second)
	for len(seen) < total && time.Now().Before(deadline) {
		for _, m := range members {
			poll(m)
		}
	}
	if len(seen) != total {
		dumpGroup(t, admin, "workers")
		t.Fatalf("consumed %d of %d distinct records", len(seen), total)
	}
	mu.Lock()
	distinct := map[int]bool{}
	for _, m := range owned {
		distinct[m] = true
	}
	mu.Unlock()
	if len(distinct) != 3 {
		t.Fatalf("partitions were not shared by the three members: owners %v", owned)
	}
	// One member leaves; what it owned moves to the others. With cooperative-sticky (franz-go's
	// default) the two that stay keep what they had: nothing is revoked from them.
	mu.Lock()
	revokedBefore := []int{revoked[0], revoked[1]}
	mu.Unlock()
	members[2].Close()
	members = members[:2]
	for i := 0; i < 120; i++ {
		prod.Produce(ctx, &kgo.Record{Partition: int32(i % 12), Value: []byte(fmt.Sprint(total + i))}, nil)
	}
	prod.Flush(ctx)
	deadline = time.Now().Add(45 * time.Second)
	for len(seen) < total+120 && time.Now().Before(deadline) {
		for _, m := range members {
			poll(m)
		}
	}
	if len(seen) != total+120 {
		dumpGroup(t, admin, "workers")
		t.Fatalf("after a member left: consumed %d of %d", len(seen), total+120)
	}
	// The last commits may have met the rebalance; commit until they land.
	for i := 0; i < 50; i++ {
		failed := false
		for _, m := range members {
			if err := m.CommitUncommittedOffsets(ctx); err != nil {
				failed = true
			}
		}
		if !failed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Lock()
	if revoked[0] != revokedBefore[0] || revoked[1] != revokedBefore[1] {
		t.Errorf("partitions revoked from members that stayed: before %v, after [%d %d]", revokedBefore, revoked[0], revoked[1])
	}
	mu.Unlock()
	t.Logf("consumed %d distinct records, %d duplicates", len(seen), dups)
	for _, m := range members {
		m.Close()
	}
	before, err := kadm.NewClient(admin).FetchOffsets(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	before.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != total+120 {
		t.Fatalf("committed offsets add up to %d, want %d", sum, total+120)
	}
	admin.Close()
	prod.Close()
	stop()

	b, _ = startBroker(t, dir)
	after, err := kadm.NewClient(client(t, b)).FetchOffsets(testContext(t), "workers")
	if err != nil {
		t.Fatal(err)
	}
	var sumAfter int64
	after.Each(func(o kadm.OffsetResponse) { sumAfter += o.At })
	if sumAfter != sum {
		t.Fatalf("committed offsets after restart add up to %d, want %d", sumAfter, sum)
	}
}

// TestGroupProtocolErrors drives the coordinator with raw requests.
func TestGroupProtocolErrors(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "g", 2, nil)
	join := func(member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = "raw", member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0}
		req.Protocols = append(req.Protocols, p)
		return request[*kmsg.JoinGroupResponse](t, cl, req)
	}
	first := join("")
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("first join: %+v", first)
	}
	second := join(first.MemberID)
	if second.ErrorCode != 0 || second.LeaderID != first.MemberID || len(second.Members) != 1 || second.Generation != 1 {
		t.Fatalf("second join: %+v", second)
	}
	if r := join("who-is-this"); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member join: %+v", r)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "raw", first.MemberID, second.Generation
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = first.MemberID, []byte("mine")
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	if r := request[*kmsg.SyncGroupResponse](t, cl, sync); r.ErrorCode != 0 || string(r.MemberAssignment) != "mine" {
		t.Fatalf("sync: %+v", r)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "raw", first.MemberID, 99
	if r := request[*kmsg.HeartbeatResponse](t, cl, hb); r.ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("stale generation heartbeat: %+v", r)
	}
	commit := func(topic string, partition int32, generation int32, member string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation, req.MemberID = "raw", generation, member
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, 5
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return request[*kmsg.OffsetCommitResponse](t, cl, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := commit("g", 1, second.Generation, first.MemberID); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	if code := commit("nope", 0, second.Generation, first.MemberID); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("commit to unknown topic: %d", code)
	}
	if code := commit("g", 7, second.Generation, first.MemberID); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("commit to unknown partition: %d", code)
	}
	if code := commit("g", 0, second.Generation-1, first.MemberID); code != kerr.IllegalGeneration.Code {
		t.Fatalf("commit with a stale generation: %d", code)
	}
	// Kafka refuses a commit from outside a group that has members with UNKNOWN_MEMBER_ID
	// (GroupCoordinator.validateOffsetCommit; issue 18, item 6.3).
	if code := commit("g", 0, -1, ""); code != kerr.UnknownMemberID.Code {
		t.Fatalf("commit from outside a group with members: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	// Deleting a group with members is refused; after the member's session expires the
	// group is empty and can be deleted, and its offsets go with it.
	adm := kadm.NewClient(cl)
	ctx := testContext(t)
	if r, _ := adm.DeleteGroup(ctx, "raw"); r.Err == nil {
		t.Fatal("deleted a group that has members")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := adm.DescribeGroups(ctx, "raw")
		if err == nil && d["raw"].State == "Empty" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member did not expire: %+v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r, err := adm.DeleteGroup(ctx, "raw"); err != nil || r.Err != nil {
		t.Fatalf("delete empty group: %v %v", err, r.Err)
	}
	offsets, _ := adm.FetchOffsets(ctx, "raw")
	if len(offsets) != 0 {
		t.Fatalf("offsets after delete: %+v", offsets)
	}
}

// TestAssignConsumerCommitWithMemberID (issue 18, item 6.2): a librdkafka consumer with
// group.protocol=consumer that uses assign() has a member id of its own and commits with it
// and generation -1, into a group nobody joined. Kafka takes such a commit (4.x
// OffsetMetadataManager.validateOffsetCommit creates a simple group for a generation < 0);
// it is read back with OffsetFetch, and the group then answers like any empty group.
func TestAssignConsumerCommitWithMemberID(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "in", 2, nil)
	commit := func(group, member string, generation int32, partition int32, offset int64) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, generation
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "in", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: offset, LeaderEpoch: -1}}}}
		resp := request[*kmsg.OffsetCommitResponse](t, cl, req)
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	const member = "rdkafka-4e9f1c2a-7b3d-4a61-9d0e-2f5c8a1b6e73"
	if code := commit("assigned", member, -1, 0, 41); code != 0 {
		t.Fatalf("assign() consumer's commit: %v, want NONE", kerr.ErrorForCode(code))
	}
	if code := commit("assigned", member, -1, 1, 42); code != 0 {
		t.Fatalf("second commit: %v, want NONE", kerr.ErrorForCode(code))
	}
	offsets, err := kadm.NewClient(cl).FetchOffsets(testContext(t), "assigned")
	if err != nil {
		t.Fatal(err)
	}
	if o0, o1 := offsets["in"][0].At, offsets["in"][1].At; o0 != 41 || o1 != 42 {
		t.Fatalf("committed offsets %d, %d; want 41, 42", o0, o1)
	}
	// A member generation to a group that does not exist is refused (OffsetCommit v9:
	// GROUP_ID_NOT_FOUND, below v9 ILLEGAL_GENERATION).
	if code := commit("never-joined", member, 5, 0, 1); code != kerr.GroupIDNotFound.Code && code != kerr.IllegalGeneration.Code {
		t.Fatalf("generation 5 to a missing group: %v", kerr.ErrorForCode(code))
	}
}

// TestCommitInRevokeCallback (issue 18, item 1): a franz-go member of an eager (range)
// group commits what it consumed in OnPartitionsRevoked, which runs when a second member's
// join has put the group in PreparingRebalance. Kafka takes that commit (doCommitOffsets:
// "During PreparingRebalance phase, we still allow a commit request"); refusing it would
// make the partitions' next owner consume those records again.
func TestCommitInRevokeCallback(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	admin := client(t, b)
	createTopic(t, admin, "revoke", 4, nil)
	ctx := testContext(t)
	const records = 200
	prod := client(t, b, kgo.DefaultProduceTopic("revoke"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for i := 0; i < records; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	revokeErrs := make(chan error, 10)
	member := func() *kgo.Client {
		return client(t, b, kgo.ConsumerGroup("revokers"), kgo.ConsumeTopics("revoke"), kgo.Balancers(kgo.RangeBalancer()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
				if len(revoked) > 0 {
					revokeErrs <- cl.CommitUncommittedOffsets(ctx)
				}
			}))
	}
	first := member()
	consumed := 0
	for deadline := time.Now().Add(30 * time.Second); consumed < records; {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d records", consumed, records)
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		consumed += first.PollFetches(pctx).NumRecords()
		cancel()
	}
	member() // joins: the group rebalances and first's revoke callback commits
	var err error
	select {
	case err = <-revokeErrs:
	case <-time.After(30 * time.Second):
		t.Fatal("the first member's partitions were never revoked")
	}
	if err != nil {
		t.Fatalf("commit in the revoke callback: %v", err)
	}
	offsets, ferr := kadm.NewClient(admin).FetchOffsets(ctx, "revokers")
	if ferr != nil {
		t.Fatal(ferr)
	}
	var committed int64
	for p := int32(0); p < 4; p++ {
		committed += offsets["revoke"][p].At
	}
	if committed != records {
		t.Fatalf("committed offsets add up to %d, want %d", committed, records)
	}
}

func dumpGroup(t *testing.T, cl *kgo.Client, groupID string) {
	adm := kadm.NewClient(cl)
	ctx := testContext(t)
	d, err := adm.DescribeGroups(ctx, groupID)
	if err != nil {
		t.Logf("describe: %v", err)
		return
	}
	for _, m := range d[groupID].Members {
		a, _ := m.Assigned.AsConsumer()
		t.Logf("member %s: %+v", m.MemberID, a)
	}
	off, _ := adm.FetchOffsets(ctx, groupID)
	off.Each(func(o kadm.OffsetResponse) { t.Logf("committed %s[%d] = %d", o.Topic, o.Partition, o.At) })
}

// TestJoinStorm: members join and leave in bursts (bounded in count and time); the group
// settles empty, and another group's committed offsets are untouched throughout.
func TestJoinStorm(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	admin := client(t, b)
	createTopic(t, admin, "storm", 6, nil)
	ctx := testContext(t)
	adm := kadm.NewClient(admin)
	steady := kadm.Offsets{}
	for p := int32(0); p < 6; p++ {
		steady.Add(kadm.Offset{Topic: "storm", Partition: p, At: int64(100 + p)})
	}
	if resp, err := adm.CommitOffsets(ctx, "steady", steady); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	const rounds, perRound = 3, 8
	var all []*kgo.Client
	for round := 0; round < rounds; round++ {
		var batch []*kgo.Client
		for i := 0; i < perRound; i++ {
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr().String()), kgo.ConsumerGroup("storm"), kgo.ConsumeTopics("storm"),
				kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, cl)
		}
		for _, cl := range batch {
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			cl.PollFetches(pctx)
			cancel()
		}
		// Half of this burst leaves at once.
		for _, cl := range batch[:perRound/2] {
			cl.Close()
		}
		all = append(all, batch[perRound/2:]...)
	}
	for _, cl := range all {
		cl.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := adm.DescribeGroups(ctx, "storm")
		if err == nil && d["storm"].State == "Empty" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group did not settle empty: %+v %v", d["storm"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := adm.FetchOffsets(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 6; p++ {
		if o, ok := got.Lookup("storm", p); !ok || o.At != int64(100+p) {
			t.Fatalf("steady's offset for partition %d changed: %+v", p, o)
		}
	}
}
