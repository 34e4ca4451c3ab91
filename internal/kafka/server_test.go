package kafka

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testHandler answers ApiVersions and Metadata; Metadata answers are Pending and complete
// in reverse order of arrival, to prove the server still writes them in request order.
type testHandler struct {
	mu      sync.Mutex
	pending []chan struct{}
	dropped chan struct{} // a pending answer whose connection went away (buffered, when set)
}

func (h *testHandler) SupportedVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, {ApiKey: 3, MinVersion: 0, MaxVersion: 12}}
}

func (h *testHandler) Handle(ctx context.Context, req *Request) Response {
	switch r := req.Body.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = h.SupportedVersions()
		return resp
	case *kmsg.MetadataRequest:
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		resp.ControllerID = req.CorrelationID
		release := make(chan struct{})
		h.mu.Lock()
		h.pending = append(h.pending, release)
		if len(h.pending) == 3 { // release the three in reverse order
			for i := len(h.pending) - 1; i >= 0; i-- {
				close(h.pending[i])
			}
			h.pending = nil
		}
		h.mu.Unlock()
		return pendingFunc(func(ctx context.Context) Response {
			select {
			case <-release:
			case <-ctx.Done():
				if h.dropped != nil {
					h.dropped <- struct{}{}
				}
				return nil
			case <-time.After(5 * time.Second):
			}
			return resp
		})
	}
	return CloseConnection
}

type pendingFunc func(ctx context.Context) Response

func (f pendingFunc) Wait(ctx context.Context) Response { return f(ctx) }

func startServer(t *testing.T) *Server { return startServerWith(t, &testHandler{}) }

func startServerWith(t *testing.T, h *testHandler) *Server {
	t.Helper()
	s := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry())}, h)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

func frame(key, version int16, corr int32, body kmsg.Request) []byte {
	body.SetVersion(version)
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if body.IsFlexible() {
		b = append(b, 0)
	}
	b = body.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readResponse(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:]
}

func TestPipelinedResponsesKeepRequestOrder(t *testing.T) {
	s := startServer(t)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []byte
	for i := int32(1); i <= 3; i++ {
		out = append(out, frame(3, 12, i*10, kmsg.NewPtrMetadataRequest())...)
	}
	out = append(out, frame(18, 3, 40, kmsg.NewPtrApiVersionsRequest())...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 3; i++ {
		corr, body := readResponse(t, c)
		if corr != i*10 {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
		resp := kmsg.NewPtrMetadataResponse()
		resp.SetVersion(12)
		if err := resp.ReadFrom(body[1:]); err != nil || resp.ControllerID != corr { // body[0]: flexible header tags
			t.Fatalf("metadata response %d: %v %+v", i, err, resp)
		}
	}
	corr, body := readResponse(t, c)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); corr != 40 || err != nil || len(resp.ApiKeys) != 2 { // never a flexible header
		t.Fatalf("api versions: corr %d err %v %+v", corr, err, resp)
	}
}

// TestClosedConnectionDropsPendingAnswers: when the client goes away, answers still pending
// (a long poll) are dropped at once, as Kafka drops them, instead of being completed for
// nobody: a killed follower's long-polling fetch must not record its stale offset later.
func TestClosedConnectionDropsPendingAnswers(t *testing.T) {
	h := &testHandler{dropped: make(chan struct{}, 1)}
	s := startServerWith(t, h)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(frame(3, 12, 1, kmsg.NewPtrMetadataRequest())); err != nil {
		t.Fatal(err)
	}
	// Close once the request is being handled: Handle registers it as pending.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		n := len(h.pending)
		h.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the handler")
		}
	}
	c.Close()
	select {
	case <-h.dropped:
	case <-time.After(4 * time.Second): // the pending answer gives up by itself after 5 s
		t.Fatal("the pending answer was still waited for after its connection closed")
	}
}

func TestApiVersionsFallbackForUnknownVersion(t *testing.T) {
	s := startServer(t)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := frame(18, 0, 7, kmsg.NewPtrApiVersionsRequest())
	binary.BigEndian.PutUint16(f[6:], 99) // a version from the future
	c.Write(f)
	corr, body := readResponse(t, c)
	resp := kmsg.NewPtrApiVersionsResponse()
	if err := resp.ReadFrom(body); corr != 7 || err != nil || resp.ErrorCode != 35 || len(resp.ApiKeys) != 2 {
		t.Fatalf("fallback: corr %d err %v %+v", corr, err, resp)
	}
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	s := startServer(t)
	huge := []byte{0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3}
	unknownKey := frame(18, 3, 1, kmsg.NewPtrApiVersionsRequest())
	binary.BigEndian.PutUint16(unknownKey[4:], 9999)
	unknownVersion := frame(3, 12, 1, kmsg.NewPtrMetadataRequest())
	binary.BigEndian.PutUint16(unknownVersion[6:], 999)
	badBody := frame(3, 1, 1, kmsg.NewPtrMetadataRequest())
	badBody = append(badBody[:len(badBody)-4], 0, 0, 0, 5)          // five topics, none there
	tagBomb := []byte{0, 0, 0, 0, 0, 23, 0, 4, 0, 0, 0, 1, 0, 0, 0} // OffsetForLeaderEpoch v4, no client id, no header tags
	tagBomb = append(tagBomb, "\xff\xff\xff\xfe\x01\xff\xff\xff\xfe\x01\x00"...)
	binary.BigEndian.PutUint32(tagBomb, uint32(len(tagBomb)-4))
	tagBomb[12], tagBomb[13] = 0xff, 0xff // null client id
	cases := map[string][]byte{
		"tag bomb":        tagBomb,
		"garbage":         []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge size":       huge,
		"negative size":   {0xff, 0xff, 0xff, 0xff},
		"unknown key":     unknownKey,
		"unknown version": unknownVersion,
		"bad body":        badBody,
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(input)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
				t.Fatalf("connection still open after %s (read %d, %v)", name, n, err)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("%s made the server allocate %d bytes", name, grew)
			}
			// Another connection is served as before.
			ok, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer ok.Close()
			ok.Write(frame(18, 3, 5, kmsg.NewPtrApiVersionsRequest()))
			if corr, _ := readResponse(t, ok); corr != 5 {
				t.Fatalf("healthy connection got correlation %d", corr)
			}
		})
	}
}

// TestFranzGoTalksToServer: a real client negotiates versions with the server.
func TestFranzGoTalksToServer(t *testing.T) {
	s := startServer(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil || len(resp.ApiKeys) != 2 {
		t.Fatalf("%v %+v", err, resp)
	}
}

// FuzzFrame feeds arbitrary bytes to a connection: the server must not panic and must go
// on serving other connections.
func FuzzFrame(f *testing.F) {
	f.Add(frame(18, 3, 1, kmsg.NewPtrApiVersionsRequest()))
	f.Add(frame(3, 12, 1, kmsg.NewPtrMetadataRequest()))
	f.Add([]byte{0, 0, 0, 8, 0, 3, 0, 1, 0, 0, 0, 1})
	s := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, &testHandler{})
	if err := s.Listen(); err != nil {
		f.Fatal(err)
	}
	go s.Serve(context.Background())
	defer s.Close()
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(input)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
		ok, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer ok.Close()
		ok.Write(frame(18, 3, 5, kmsg.NewPtrApiVersionsRequest()))
		if corr, _ := readResponse(t, ok); corr != 5 {
			t.Fatalf("server stopped answering after %q", input)
		}
	})
}
