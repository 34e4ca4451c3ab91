package compat

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestGarbageOnTheWire sends a real strand malformed frames on raw connections: each
// offending connection is closed, nothing else is disturbed, and stored records are intact.
func TestGarbageOnTheWire(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	cl := node.Client(t, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("wire"), kgo.ConsumeTopics("wire"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strings.Repeat("v", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	frameOf := func(key, version uint16, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(10+len(body)))
		b = binary.BigEndian.AppendUint16(b, key)
		b = binary.BigEndian.AppendUint16(b, version)
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
		return append(b, body...)
	}
	inputs := map[string][]byte{
		"http":            []byte("GET /metrics HTTP/1.1\r\nHost: strand\r\n\r\n"),
		"2 GiB frame":     {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 9},
		"negative frame":  {0x80, 0, 0, 0},
		"truncated frame": {0, 0, 1, 0, 0, 3, 0, 1},
		"unknown api key": frameOf(31337, 0, nil),
		"unknown version": frameOf(0, 999, nil),
		"produce garbage": frameOf(0, 7, []byte{0xff, 0xff, 0, 1, 0, 0, 0x27, 0x10, 0, 0, 0, 1, 0, 4, 'w', 'i', 'r', 'e', 0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}),
	}
	for name, input := range inputs {
		c, err := net.Dial("tcp", node.KafkaAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(input)
		if cw, ok := c.(*net.TCPConn); ok && name == "truncated frame" {
			cw.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("%s: connection not closed: %v", name, err)
		}
		if len(rest) != 0 {
			t.Fatalf("%s: broker answered %d bytes instead of closing", name, len(rest))
		}
	}
	read := 0
	for read < 100 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 100 records after the garbage", read)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if len(r.Value) != int(r.Offset) {
				t.Fatalf("record %d has %d bytes", r.Offset, len(r.Value))
			}
			read++
		})
	}
}
