package broker

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// KIP-430 without an authorizer: Kafka reports every operation a resource type supports
// (AclEntry.supportedOperations in server/.../security/authorizer/AclEntry.java; bit n is
// AclOperation code n in clients/.../common/acl/AclOperation.java) when asked, and leaves
// the field at math.MinInt32 when not. The expected numbers are worked out here from the
// codes, not read from the code under test:
//
//	topic:   READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11 = 3576
//	cluster: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12 = 8096
//	group:   READ 3, DELETE 6, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11 = 3400
func TestAuthorizedOperations(t *testing.T) {
	const topicOps, clusterOps, groupOps = 3576, 8096, 3400
	const unset = math.MinInt32
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "ops", 1, nil)

	for _, include := range []bool{false, true} {
		want := func(ops int32) int32 {
			if include {
				return ops
			}
			return unset
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("ops")
		req.Topics = append(req.Topics, rt)
		req.IncludeTopicAuthorizedOperations = include
		md := request[*kmsg.MetadataResponse](t, cl, req)
		if got := md.Topics[0].AuthorizedOperations; got != want(topicOps) {
			t.Errorf("Metadata include=%v: topic operations %d, want %d", include, got, want(topicOps))
		}

		// include_cluster_authorized_operations exists in Metadata v8 to v10 only.
		versions := kversion.Stable()
		versions.SetMaxKeyVersion(int16(kmsg.Metadata), 10)
		v10 := client(t, b, kgo.MaxVersions(versions))
		req = kmsg.NewPtrMetadataRequest()
		req.IncludeClusterAuthorizedOperations = include
		md = request[*kmsg.MetadataResponse](t, v10, req)
		if md.Version != 10 || md.AuthorizedOperations != want(clusterOps) {
			t.Errorf("Metadata v%d include=%v: cluster operations %d, want %d", md.Version, include, md.AuthorizedOperations, want(clusterOps))
		}

		dc := kmsg.NewPtrDescribeClusterRequest()
		dc.IncludeClusterAuthorizedOperations = include
		dcr := request[*kmsg.DescribeClusterResponse](t, cl, dc)
		if dcr.ClusterAuthorizedOperations != want(clusterOps) {
			t.Errorf("DescribeCluster include=%v: cluster operations %d, want %d", include, dcr.ClusterAuthorizedOperations, want(clusterOps))
		}
	}

	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "ops", Partition: 0, At: 0, LeaderEpoch: -1})
	if err := kadm.NewClient(cl).CommitAllOffsets(testContext(t), "ops-group", offsets); err != nil {
		t.Fatal(err)
	}
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch, hb.RebalanceTimeoutMillis = "kip848", "m1", 0, 30000
	hb.SubscribedTopicNames, hb.Topics = []string{"ops"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if r := request[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, hb); r.ErrorCode != 0 {
		t.Fatalf("ConsumerGroupHeartbeat: code %d", r.ErrorCode)
	}
	// Each describe returns (error code, authorized operations) of its one group.
	describes := map[string]func(include bool) (int16, int32){
		"DescribeGroups": func(include bool) (int16, int32) {
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups, req.IncludeAuthorizedOperations = []string{"ops-group"}, include
			g := request[*kmsg.DescribeGroupsResponse](t, cl, req).Groups[0]
			return g.ErrorCode, g.AuthorizedOperations
		},
		"ConsumerGroupDescribe": func(include bool) (int16, int32) {
			req := kmsg.NewPtrConsumerGroupDescribeRequest()
			req.Groups, req.IncludeAuthorizedOperations = []string{"kip848"}, include
			g := request[*kmsg.ConsumerGroupDescribeResponse](t, cl, req).Groups[0]
			return g.ErrorCode, g.AuthorizedOperations
		},
	}
	for name, describe := range describes {
		for _, include := range []bool{false, true} {
			want := int32(unset)
			if include {
				want = groupOps
			}
			if code, ops := describe(include); code != 0 || ops != want {
				t.Errorf("%s include=%v: code %d, group operations %d, want 0 and %d", name, include, code, ops, want)
			}
		}
	}
}
