package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metadataFor asks for one topic's metadata, allowing auto-creation.
func metadataFor(t *testing.T, b *Broker, topic string) kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = true
	resp := request[*kmsg.MetadataResponse](t, client(t, b), req)
	return resp.Topics[0]
}

// Static broker configs (`serve --broker-config`, Kafka's server.properties) reach the topics
// the broker creates on its own and CreateTopics asking for the defaults (-1): Kafka's
// AutoTopicCreationManager creates with the broker's num.partitions and
// default.replication.factor, and CreateTopics with -1 takes them too (KIP-464).
func TestStaticConfigsReachCreatedTopics(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) {
		c.StaticConfigs = map[string]string{"num.partitions": "5", "default.replication.factor": "1"}
	})
	cl := client(t, b)

	mt := metadataFor(t, b, "auto-created")
	if mt.ErrorCode != 0 || len(mt.Partitions) != 5 {
		t.Fatalf("auto-created topic: code %d, %d partitions; want 0 and 5 (num.partitions=5)", mt.ErrorCode, len(mt.Partitions))
	}

	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "defaults", -1, -1
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.CreateTopicsResponse](t, cl, req)
	if got := resp.Topics[0]; got.ErrorCode != 0 || got.NumPartitions != 5 || got.ReplicationFactor != 1 {
		t.Fatalf("CreateTopics -1/-1: code %d, %d partitions, RF %d; want 0, 5, 1", got.ErrorCode, got.NumPartitions, got.ReplicationFactor)
	}
}

// auto.create.topics.enable=false given at start stops auto-creation.
func TestStaticAutoCreateOff(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) {
		c.StaticConfigs = map[string]string{"auto.create.topics.enable": "false"}
	})
	mt := metadataFor(t, b, "not-created")
	if mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata of an unknown topic with auto.create.topics.enable=false: code %d, want UNKNOWN_TOPIC_OR_PARTITION", mt.ErrorCode)
	}
	if _, ok := b.meta.State().Topics["not-created"]; ok {
		t.Fatal("topic created although auto.create.topics.enable=false")
	}
}
