package broker

import (
	"context"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/kafka"
)

// FuzzHandle decodes arbitrary bytes as the body of every request kind and version the
// broker advertises and hands whatever kmsg accepts to Handle: it must never panic, and
// every answer must be one the wire can write.
func FuzzHandle(f *testing.F) {
	b, _ := startBroker(f, f.TempDir())
	cl := client(f, b)
	createTopic(f, cl, "fz", 2, nil)
	for _, k := range supported {
		req := kmsg.RequestForKey(k.ApiKey)
		req.SetVersion(k.MaxVersion)
		f.Add(k.ApiKey, k.MaxVersion, req.AppendTo(nil))
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(9)
	produce.Acks = -1
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "fz"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = idemBatch(f, -1, -1, -1, 2)
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	f.Add(int16(0), int16(9), produce.AppendTo(nil))
	// Transactions: a transactional produce, the markers that end it (one partition known,
	// one not), the producer's offsets, and the partitions' producers.
	txnProduce := kmsg.NewPtrProduceRequest()
	txnProduce.SetVersion(11)
	txnProduce.Acks, txnProduce.TransactionID = -1, kmsg.StringPtr("fz-txn")
	tp := kmsg.NewProduceRequestTopicPartition()
	tp.Records = epochTxnRecords(f, 5, 0, 0, "v")
	txnProduce.Topics = []kmsg.ProduceRequestTopic{{Topic: "fz", Partitions: []kmsg.ProduceRequestTopicPartition{tp}}}
	f.Add(int16(kmsg.Produce), int16(11), txnProduce.AppendTo(nil))
	markers := kmsg.NewPtrWriteTxnMarkersRequest()
	markers.SetVersion(1)
	markers.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: 5, ProducerEpoch: 0, Committed: true, CoordinatorEpoch: 1,
		Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "fz", Partitions: []int32{0, 1, 7}}, {Topic: "nosuch", Partitions: []int32{0}}}}}
	f.Add(int16(kmsg.WriteTxnMarkers), int16(1), markers.AppendTo(nil))
	offsets := kmsg.NewPtrTxnOffsetCommitRequest()
	offsets.SetVersion(3)
	offsets.TransactionalID, offsets.Group, offsets.ProducerID, offsets.MemberID = "fz-txn", "fz-group", 5, "m"
	offsets.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "fz", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	f.Add(int16(kmsg.TxnOffsetCommit), int16(3), offsets.AppendTo(nil))
	producers := kmsg.NewPtrDescribeProducersRequest()
	producers.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "fz", Partitions: []int32{0, 1, -1}}}
	f.Add(int16(kmsg.DescribeProducers), int16(0), producers.AppendTo(nil))
	conn := kafka.ConnInfo{ID: 1, Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, Local: &net.TCPAddr{}}
	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		if !versionSupported(key, version) {
			return
		}
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if err := kafka.DecodeBody(req, body); err != nil {
			return // the wire closes the connection on such input
		}
		if r, ok := req.(*kmsg.FetchRequest); ok && r.MaxWaitMillis > 100 {
			r.MaxWaitMillis = 100 // keep long polls short under the fuzzer
		}
		if r, ok := req.(*kmsg.ProduceRequest); ok && r.TimeoutMillis > 1000 {
			r.TimeoutMillis = 1000
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		defer cancel()
		resp := b.Handle(ctx, &kafka.Request{Key: key, Version: version, Body: req, Conn: conn})
		if p, ok := resp.(kafka.Pending); ok {
			resp = p.Wait(ctx)
		}
		switch r := resp.(type) {
		case nil:
		case kmsg.Response:
			r.SetVersion(version)
			r.AppendTo(nil)
		case kafka.BodyWriter:
			var w writerBuffer
			if err := r.WriteBody(&w, nil); err != nil || len(w) != r.BodyLen() {
				t.Fatalf("body writer: %v, %d bytes of %d", err, len(w), r.BodyLen())
			}
		default:
			if resp != kafka.CloseConnection {
				t.Fatalf("answer of type %T", resp)
			}
		}
	})
}
