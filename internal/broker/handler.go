package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/kafka"
)

// supported lists every API this node answers and the versions it implements; ApiVersions
// advertises exactly this.
var supported = []kmsg.ApiVersionsResponseApiKey{
	{ApiKey: int16(kmsg.Produce), MinVersion: 3, MaxVersion: 11},
	{ApiKey: int16(kmsg.Fetch), MinVersion: 4, MaxVersion: 12},
	{ApiKey: int16(kmsg.ListOffsets), MinVersion: 1, MaxVersion: 8},
	{ApiKey: int16(kmsg.Metadata), MinVersion: 0, MaxVersion: 12},
	{ApiKey: int16(kmsg.ApiVersions), MinVersion: 0, MaxVersion: 3},
	{ApiKey: int16(kmsg.CreateTopics), MinVersion: 0, MaxVersion: 7},
	{ApiKey: int16(kmsg.DeleteTopics), MinVersion: 0, MaxVersion: 6},
	{ApiKey: int16(kmsg.DeleteRecords), MinVersion: 0, MaxVersion: 2},
	{ApiKey: int16(kmsg.OffsetForLeaderEpoch), MinVersion: 0, MaxVersion: 4},
	{ApiKey: int16(kmsg.DescribeConfigs), MinVersion: 0, MaxVersion: 4},
	{ApiKey: int16(kmsg.AlterConfigs), MinVersion: 0, MaxVersion: 2},
	{ApiKey: int16(kmsg.CreatePartitions), MinVersion: 0, MaxVersion: 3},
	{ApiKey: int16(kmsg.IncrementalAlterConfigs), MinVersion: 0, MaxVersion: 1},
	{ApiKey: int16(kmsg.DescribeCluster), MinVersion: 0, MaxVersion: 1},
	{ApiKey: int16(kmsg.AlterPartitionAssignments), MinVersion: 0, MaxVersion: 1},
	{ApiKey: int16(kmsg.ListPartitionReassignments), MinVersion: 0, MaxVersion: 0},
	{ApiKey: int16(kmsg.UnregisterBroker), MinVersion: 0, MaxVersion: 0},
	{ApiKey: int16(kmsg.ElectLeaders), MinVersion: 0, MaxVersion: 2},
	{ApiKey: int16(kmsg.WriteTxnMarkers), MinVersion: 0, MaxVersion: 2},
	{ApiKey: int16(kmsg.DescribeProducers), MinVersion: 0, MaxVersion: 0},
	{ApiKey: int16(kmsg.DescribeUserSCRAMCredentials), MinVersion: 0, MaxVersion: 0},
	{ApiKey: int16(kmsg.AlterUserSCRAMCredentials), MinVersion: 0, MaxVersion: 0},
}

// groupAPIs are answered by the group coordinator.
var groupAPIs = (&group.Coordinator{}).SupportedVersions()

func init() {
	supported = append(supported, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(kmsg.FindCoordinator), MinVersion: 0, MaxVersion: 4})
	supported = append(supported, groupAPIs...)
}

func isGroupAPI(key int16) bool {
	for _, k := range groupAPIs {
		if k.ApiKey == key {
			return true
		}
	}
	return false
}

// SupportedVersions implements kafka.VersionLister.
func (b *Broker) SupportedVersions() []kmsg.ApiVersionsResponseApiKey { return supported }

func versionSupported(key, version int16) bool {
	for _, k := range supported {
		if k.ApiKey == key {
			return version >= k.MinVersion && version <= k.MaxVersion
		}
	}
	return false
}

// Handle implements kafka.Handler.
func (b *Broker) Handle(ctx context.Context, req *kafka.Request) kafka.Response {
	if !versionSupported(req.Key, req.Version) {
		if req.Key == int16(kmsg.ApiVersions) {
			return b.apiVersions(req.Version)
		}
		// Kafka closes the connection on requests it cannot serve; answering with a
		// body of a version we do not implement would be worse.
		b.log.Warn("unsupported request version", "api", kmsg.NameForKey(req.Key), "version", req.Version, "remote", req.Conn.Remote.String())
		return unsupported(req)
	}
	if isGroupAPI(req.Key) {
		return b.handleGroup(ctx, req)
	}
	if isTxnAPI(req.Key) {
		return b.handleTxn(ctx, req.Body)
	}
	switch r := req.Body.(type) {
	case *kmsg.FindCoordinatorRequest:
		return b.handleFindCoordinator(ctx, r)
	case *kmsg.ApiVersionsRequest:
		return b.apiVersions(req.Version)
	case *kmsg.MetadataRequest:
		return b.handleMetadata(ctx, r)
	case *kmsg.ProduceRequest:
		return b.handleProduce(ctx, r, req.Received)
	case *kmsg.FetchRequest:
		return b.handleFetch(ctx, r)
	case *kmsg.ListOffsetsRequest:
		return b.handleListOffsets(r)
	case *kmsg.CreateTopicsRequest:
		return b.handleCreateTopics(ctx, r)
	case *kmsg.DeleteTopicsRequest:
		return b.handleDeleteTopics(ctx, r)
	case *kmsg.CreatePartitionsRequest:
		return b.handleCreatePartitions(ctx, r)
	case *kmsg.DeleteRecordsRequest:
		return b.handleDeleteRecords(r)
	case *kmsg.InitProducerIDRequest:
		return b.handleInitProducerID(ctx, r)
	case *kmsg.OffsetForLeaderEpochRequest:
		return b.handleOffsetForLeaderEpoch(r)
	case *kmsg.DescribeConfigsRequest:
		return b.handleDescribeConfigs(r)
	case *kmsg.AlterConfigsRequest:
		return b.handleAlterConfigs(ctx, r)
	case *kmsg.IncrementalAlterConfigsRequest:
		return b.handleIncrementalAlterConfigs(ctx, r)
	case *kmsg.DescribeClusterRequest:
		return b.handleDescribeCluster(r)
	case *kmsg.AlterPartitionAssignmentsRequest:
		return b.handleAlterPartitionReassignments(ctx, r)
	case *kmsg.ListPartitionReassignmentsRequest:
		return b.handleListPartitionReassignments(r)
	case *kmsg.UnregisterBrokerRequest:
		return b.handleUnregisterBroker(ctx, r)
	case *kmsg.ElectLeadersRequest:
		return b.handleElectLeaders(ctx, r)
	case *kmsg.WriteTxnMarkersRequest:
		return b.handleWriteTxnMarkers(r)
	case *kmsg.DescribeProducersRequest:
		return b.handleDescribeProducers(r)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return b.handleDescribeUserSCRAM(req, r)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return b.handleAlterUserSCRAM(ctx, req, r)
	}
	return unsupported(req)
}

// unsupported answers a request this node does not implement: Kafka closes the connection.
func unsupported(req *kafka.Request) kafka.Response { return kafka.CloseConnection }

func (b *Broker) apiVersions(version int16) kafka.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ApiKeys = supported
	if !versionSupported(int16(kmsg.ApiVersions), version) {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	return resp
}
