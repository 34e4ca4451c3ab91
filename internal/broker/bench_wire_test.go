package broker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// BenchmarkProduceWire measures the broker alone on the write path: one connection sends
// pre-encoded Produce requests (v9, acks=all, 6 partitions, one batch each) pipelined 5
// deep, as franz-go does, and reads the answers. The client costs almost nothing, so the
// CPU profile and allocations are the broker's: frame read, decode, validation, append,
// group commit and the response write. One op is one request.
func BenchmarkProduceWire(b *testing.B) {
	for _, tc := range []struct {
		recordSize, perBatch int
	}{{100, 1000}, {1024, 100}} {
		b.Run(fmt.Sprintf("record=%dB", tc.recordSize), func(b *testing.B) {
			br, _ := startBroker(b, b.TempDir())
			cl := client(b, br)
			const partitions = 6
			createTopic(b, cl, "wire", partitions, nil)
			frame, payload := produceFrame(b, "wire", partitions, tc.perBatch, tc.recordSize)
			conn, err := net.Dial("tcp", br.KafkaAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			const inFlight = 5
			slots := make(chan struct{}, inFlight)
			readErr := make(chan error, 1)
			b.SetBytes(int64(payload))
			b.ReportAllocs()
			b.ResetTimer()
			go func() { readErr <- readProduceResponses(conn, b.N, slots) }()
			for i := 0; i < b.N; i++ {
				slots <- struct{}{}
				binary.BigEndian.PutUint32(frame[8:], uint32(i)) // correlation id
				if _, err := conn.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-readErr; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*partitions*tc.perBatch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// produceFrame encodes a whole Produce request frame (size prefix included) and returns it
// with the record value bytes it carries.
func produceFrame(b *testing.B, topic string, partitions, perBatch, recordSize int) ([]byte, int) {
	value := make([]byte, recordSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	recs := make([]record.Record, perBatch)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: value}
	}
	batch, err := record.Build(record.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: time.Now().UnixMilli()}, recs, record.CodecNone)
	if err != nil {
		b.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	for p := range partitions {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = int32(p)
		rp.Records = batch
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	// Header v2: key, version, correlation id, client id, no tags.
	frame := []byte{0, 0, 0, 0}
	frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.Produce))
	frame = binary.BigEndian.AppendUint16(frame, 9)
	frame = binary.BigEndian.AppendUint32(frame, 0)
	frame = binary.BigEndian.AppendUint16(frame, 5)
	frame = append(frame, "bench"...)
	frame = append(frame, 0)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame, partitions * perBatch * recordSize
}

// readProduceResponses reads n Produce responses, freeing a slot for each, and checks
// that every partition succeeded.
func readProduceResponses(conn net.Conn, n int, slots <-chan struct{}) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	var size [4]byte
	var buf []byte
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return err
		}
		buf = append(buf[:0], make([]byte, binary.BigEndian.Uint32(size[:]))...)
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(9)
		if err := resp.ReadFrom(buf[5:]); err != nil { // correlation id, empty tags
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return fmt.Errorf("partition %d: error %d", p.Partition, p.ErrorCode)
				}
			}
		}
		<-slots
	}
	return nil
}
