package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// reuseHandler releases Produce frames and keeps every SyncGroup assignment it is given,
// which aliases the request's frame.
type reuseHandler struct {
	mu        sync.Mutex
	records   [][]byte // each Produce request's records, aliasing its frame
	snapshots [][]byte // copies of the same, taken inside Handle
	kept      [][]byte // SyncGroup assignments, aliasing frames never released
}

func (h *reuseHandler) ReleasesFrame(key int16) bool { return key == int16(kmsg.Produce) }

func (h *reuseHandler) Handle(ctx context.Context, req *Request) Response {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r := req.Body.(type) {
	case *kmsg.ProduceRequest:
		recs := r.Topics[0].Partitions[0].Records
		h.records = append(h.records, recs)
		h.snapshots = append(h.snapshots, bytes.Clone(recs))
		return r.ResponseKind()
	case *kmsg.SyncGroupRequest:
		h.kept = append(h.kept, r.GroupAssignment[0].MemberAssignment)
		return r.ResponseKind()
	}
	return CloseConnection
}

// TestReleasedFramesAreReusedAndOthersKept sends Produce and SyncGroup requests on one
// connection: Produce frames, which the handler releases, are read into recycled buffers;
// a SyncGroup frame, which the handler may keep, is never overwritten.
func TestReleasedFramesAreReusedAndOthersKept(t *testing.T) {
	h := &reuseHandler{}
	s := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry())}, h)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	produce := func(fill byte) []byte {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = 1
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Records = bytes.Repeat([]byte{fill}, 1000)
		topic := kmsg.NewProduceRequestTopic()
		topic.Topic, topic.Partitions = "t", []kmsg.ProduceRequestTopicPartition{tp}
		req.Topics = append(req.Topics, topic)
		return frame(0, 9, int32(fill), req)
	}
	sync := func(fill byte) []byte {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID = "g", "m"
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = "m", bytes.Repeat([]byte{fill}, 1000)
		req.GroupAssignment = append(req.GroupAssignment, a)
		return frame(14, 3, int32(fill), req)
	}
	const fills = "abcdefghijklmnopqrstuvwxyz"
	var sequence [][]byte
	for i := range len(fills) {
		sequence = append(sequence, produce(fills[i]))
		if i%5 == 2 {
			sequence = append(sequence, sync(fills[i]))
		}
	}
	for _, f := range sequence {
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
		readResponse(t, c) // one at a time: each answer proves the handler is done with its request
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, a := range h.kept {
		fill := fills[5*i+2]
		if want := bytes.Repeat([]byte{fill}, 1000); !bytes.Equal(a, want) {
			t.Fatalf("kept SyncGroup assignment %q was overwritten: starts %q", fill, a[:8])
		}
	}
	for i, snap := range h.snapshots {
		if snap[0] != fills[i] {
			t.Fatalf("produce %d carried %q", i, snap[:1])
		}
	}
	// The pool may drop buffers (the race detector makes it drop some on purpose), but in
	// 26 requests, one at a time, recycling shows.
	reused := 0
	for i := 1; i < len(h.records); i++ {
		for j := 0; j < i; j++ {
			if &h.records[i][0] == &h.records[j][0] {
				reused++
				break
			}
		}
	}
	if reused == 0 {
		t.Fatal("released Produce frames were never reused")
	}
}
