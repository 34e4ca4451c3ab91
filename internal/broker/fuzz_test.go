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
