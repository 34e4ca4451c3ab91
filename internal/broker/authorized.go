package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KIP-430: Metadata, DescribeCluster, DescribeGroups and ConsumerGroupDescribe can report
// which operations the caller may perform on each resource, as a bitfield with bit n set for
// AclOperation code n (Kafka's Utils.to32BitField). A field not asked for keeps the
// protocol's default, math.MinInt32 (kmsg's zero value for it), which means "not given".
//
// Without an authorizer Kafka allows everything, so each resource reports every operation
// that applies to its type. The security issue (DESIGN D16) replaces authorizedOperations's
// body with an ACL check per operation; the callers stay as they are.

// aclOperation is Kafka's AclOperation code (clients/.../common/acl/AclOperation.java).
type aclOperation int8

const (
	opRead            aclOperation = 3
	opWrite           aclOperation = 4
	opCreate          aclOperation = 5
	opDelete          aclOperation = 6
	opAlter           aclOperation = 7
	opDescribe        aclOperation = 8
	opClusterAction   aclOperation = 9
	opDescribeConfigs aclOperation = 10
	opAlterConfigs    aclOperation = 11
	opIdempotentWrite aclOperation = 12
)

// supportedOperations are the operations that apply to a resource type, as Kafka's
// AclEntry.supportedOperations (server/.../security/authorizer/AclEntry.java) lists them.
// CREATE_TOKENS and DESCRIBE_TOKENS apply to USER resources, not to the cluster.
var supportedOperations = map[kmsg.ACLResourceType][]aclOperation{
	kmsg.ACLResourceTypeTopic:   {opRead, opWrite, opCreate, opDescribe, opDelete, opAlter, opDescribeConfigs, opAlterConfigs},
	kmsg.ACLResourceTypeGroup:   {opRead, opDescribe, opDelete, opDescribeConfigs, opAlterConfigs},
	kmsg.ACLResourceTypeCluster: {opCreate, opClusterAction, opDescribeConfigs, opAlterConfigs, opIdempotentWrite, opAlter, opDescribe},
}

// authorizedOperations is the KIP-430 bitfield of what the caller may do to a resource.
// With no authorizer, that is every operation the resource type supports.
func authorizedOperations(resource kmsg.ACLResourceType, name string) int32 {
	var bits int32
	for _, op := range supportedOperations[resource] {
		bits |= 1 << op
	}
	return bits
}

// fillAuthorizedOperations sets the KIP-430 fields a response was asked for.
func fillAuthorizedOperations(req kmsg.Request, resp kmsg.Response) {
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		q := req.(*kmsg.MetadataRequest)
		if q.IncludeClusterAuthorizedOperations {
			r.AuthorizedOperations = authorizedOperations(kmsg.ACLResourceTypeCluster, "kafka-cluster")
		}
		if q.IncludeTopicAuthorizedOperations {
			for i := range r.Topics {
				if r.Topics[i].Topic != nil {
					r.Topics[i].AuthorizedOperations = authorizedOperations(kmsg.ACLResourceTypeTopic, *r.Topics[i].Topic)
				}
			}
		}
	case *kmsg.DescribeClusterResponse:
		if req.(*kmsg.DescribeClusterRequest).IncludeClusterAuthorizedOperations {
			r.ClusterAuthorizedOperations = authorizedOperations(kmsg.ACLResourceTypeCluster, "kafka-cluster")
		}
	case *kmsg.DescribeGroupsResponse:
		// As KafkaApis.handleDescribeGroupsRequest: only groups described without error.
		if req.(*kmsg.DescribeGroupsRequest).IncludeAuthorizedOperations {
			for i := range r.Groups {
				if r.Groups[i].ErrorCode == 0 {
					r.Groups[i].AuthorizedOperations = authorizedOperations(kmsg.ACLResourceTypeGroup, r.Groups[i].Group)
				}
			}
		}
	case *kmsg.ConsumerGroupDescribeResponse:
		if req.(*kmsg.ConsumerGroupDescribeRequest).IncludeAuthorizedOperations {
			for i := range r.Groups {
				if r.Groups[i].ErrorCode == 0 {
					r.Groups[i].AuthorizedOperations = authorizedOperations(kmsg.ACLResourceTypeGroup, r.Groups[i].Group)
				}
			}
		}
	}
}
