package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/auth"
)

// Request is one decoded request.
type Request struct {
	Key, Version  int16
	CorrelationID int32
	ClientID      *string
	Body          kmsg.Request
	Conn          ConnInfo
	Received      time.Time // when the frame's first bytes were read
}

// ConnInfo identifies the connection a request came on.
type ConnInfo struct {
	ID     uint64
	Remote net.Addr
	Local  net.Addr
	// Principal is who the client authenticated as, Kafka's "User:<name>"; User:ANONYMOUS
	// on a listener without authentication. The authorizer reads it.
	Principal string
}

// Response is a handler's answer: nil (send nothing, as for acks=0), a kmsg.Response, a
// BodyWriter, or a Pending.
type Response any

// BodyWriter is a response body the handler encodes itself, for zero-copy fetch.
type BodyWriter interface {
	BodyLen() int
	// WriteBody writes head (answers queued before this one and this answer's header) and
	// then exactly BodyLen bytes. w is the *net.TCPConn where possible, so file sections can
	// go out with sendfile; head lets the first encoded bytes share one writev with it.
	WriteBody(w io.Writer, head net.Buffers) error
}

// CloseConnection is an answer that closes the connection once the answers before it are
// written, as Kafka does for requests it cannot serve.
var CloseConnection Response = closeSentinel{}

type closeSentinel struct{}

// Pending is an answer that is not ready yet (an fsync, a long poll). The server goes on
// handling the connection's next requests and waits for it when its turn to be written comes.
type Pending interface {
	Wait(ctx context.Context) Response
}

// FrameReleaser is implemented by a Handler that keeps no reference into some requests'
// bytes once Handle has returned (Produce: the records are written by then), so the
// connection may read its next request into the same buffer.
type FrameReleaser interface {
	ReleasesFrame(key int16) bool
}

// Handler answers requests. It is called sequentially per connection, in request order, so
// side effects keep their order; different connections run concurrently.
type Handler interface {
	Handle(ctx context.Context, req *Request) Response
}

// VersionLister is implemented by handlers that can list what they support; the server uses
// it to answer ApiVersions requests of versions it cannot decode (the v0 fallback).
type VersionLister interface {
	SupportedVersions() []kmsg.ApiVersionsResponseApiKey
}

// Config configures a Server.
type Config struct {
	Addr            string
	MaxRequestBytes int32         // socket.request.max.bytes
	MaxInFlight     int           // unanswered requests per connection before reading pauses
	IdleTimeout     time.Duration // connections.max.idle.ms
	Logger          *slog.Logger
	Metrics         *Metrics
	Security        Security
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9092"
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 100
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Security.AuthTimeout <= 0 {
		c.Security.AuthTimeout = 10 * time.Second
	}
	return c
}

// Server is the Kafka protocol listener.
type Server struct {
	cfg     Config
	handler Handler
	ln      net.Listener
	nextID  atomic.Uint64

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server for h; call Listen, then Serve.
func NewServer(cfg Config, h Handler) *Server {
	return &Server{cfg: cfg.withDefaults(), handler: h, conns: map[*conn]struct{}{}}
}

// Listen binds the listening socket.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka listener: %w", err)
	}
	if t := s.cfg.Security.TLS; t != nil {
		ln = tls.NewListener(ln, t.Config)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx is done or Close is called, then closes every
// connection and waits for their goroutines.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	var err error
	for {
		nc, aerr := s.ln.Accept()
		if aerr != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					continue
				}
				err = fmt.Errorf("kafka accept: %w", aerr)
			}
			break
		}
		c := s.newConn(ctx, nc)
		if c == nil {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
	s.Close()
	s.wg.Wait()
	return err
}

// Close stops accepting and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.nc.Close()
	}
	return err
}

func (s *Server) newConn(ctx context.Context, nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &conn{s: s, nc: nc, info: ConnInfo{ID: s.nextID.Add(1), Remote: nc.RemoteAddr(), Local: nc.LocalAddr(), Principal: auth.Anonymous}}
	c.ctx, c.cancel = context.WithCancel(ctx)
	s.conns[c] = struct{}{}
	if m := s.cfg.Metrics; m != nil {
		m.connections.Inc()
	}
	return c
}

func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if m := s.cfg.Metrics; m != nil {
		m.connections.Dec()
	}
}
