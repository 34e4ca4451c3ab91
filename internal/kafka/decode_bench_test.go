package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceV9Body is a Produce v9 (flexible) request as a producer batching to 3 topics of
// 6 partitions sends it: one 1 KiB record batch a partition.
func produceV9Body() []byte {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = -1
	req.TimeoutMillis = 30000
	for ti := 0; ti < 3; ti++ {
		topic := kmsg.NewProduceRequestTopic()
		topic.Topic = fmt.Sprintf("topic-%d", ti)
		for p := int32(0); p < 6; p++ {
			part := kmsg.NewProduceRequestTopicPartition()
			part.Partition = p
			part.Records = make([]byte, 1024)
			topic.Partitions = append(topic.Partitions, part)
		}
		req.Topics = append(req.Topics, topic)
	}
	return req.AppendTo(nil)
}

// fetchV12Body is a Fetch v12 (flexible) request of a consumer of 10 topics of 10
// partitions.
func fetchV12Body() []byte {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = -1
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 50 << 20
	req.Topics = make([]kmsg.FetchRequestTopic, 10)
	for i := range 100 {
		topic := &req.Topics[i/10]
		topic.Topic = fmt.Sprintf("topic-%d", i/10)
		part := kmsg.NewFetchRequestTopicPartition()
		part.Partition = int32(i % 10)
		part.CurrentLeaderEpoch = 3
		part.FetchOffset = 123456
		part.PartitionMaxBytes = 1 << 20
		topic.Partitions = append(topic.Partitions, part)
	}
	return req.AppendTo(nil)
}

func benchmarkDecode(b *testing.B, key kmsg.Key, version int16, body []byte) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := kmsg.RequestForKey(int16(key))
		req.SetVersion(version)
		if err := DecodeBody(req, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeProduceV9 and BenchmarkDecodeFetchV12 time the broker's decoding path
// (DecodeBody) for the two most frequent flexible requests.
func BenchmarkDecodeProduceV9(b *testing.B) { benchmarkDecode(b, kmsg.Produce, 9, produceV9Body()) }

func BenchmarkDecodeFetchV12(b *testing.B) { benchmarkDecode(b, kmsg.Fetch, 12, fetchV12Body()) }
