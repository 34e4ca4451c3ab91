package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection: a reader goroutine that decodes requests and calls the
// handler in order, and a writer goroutine that writes the answers in the same order.
type conn struct {
	s      *Server
	nc     net.Conn
	info   ConnInfo
	ctx    context.Context
	cancel context.CancelFunc
	sasl   saslState // read and written by the reader goroutine only
}

// queued is an answer waiting for its turn to be written.
type queued struct {
	key, version  int16
	correlationID int32
	resp          Response
	start         time.Time
}

// errFrame marks input that closes the connection.
type errFrame struct{ reason, detail string }

func (e *errFrame) Error() string { return e.reason + ": " + e.detail }

func (c *conn) serve() {
	defer c.s.dropConn(c)
	defer c.nc.Close()
	defer c.cancel()
	if err := c.handshakeTLS(); err != nil {
		c.logAuthFailure(err)
		return
	}
	queue := make(chan queued, c.s.cfg.MaxInFlight)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(queue)
	}()
	err := c.readLoop(queue)
	close(queue)
	var fe *errFrame
	if errors.As(err, &fe) {
		c.s.cfg.Logger.Warn("closing kafka connection on bad input", "remote", c.info.Remote.String(), "reason", fe.reason, "detail", fe.detail)
		if m := c.s.cfg.Metrics; m != nil {
			m.badFrames.WithLabelValues(fe.reason).Inc()
		}
	}
	c.logAuthFailure(err)
	// The client closed (or broke) the connection, or sent bad input: answers still
	// pending are dropped, as Kafka drops them. A long-polling fetch of a replica that was
	// killed must not go on counting its stale fetch offset toward the ISR.
	c.cancel()
	<-writerDone
}

func (c *conn) readLoop(queue chan<- queued) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.s.cfg.Logger.Error("handler panic; closing connection", "remote", c.info.Remote.String(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	releaser, _ := c.s.handler.(FrameReleaser)
	sec := &c.s.cfg.Security
	authDeadline := time.Now().Add(sec.AuthTimeout)
	for {
		deadline := time.Now().Add(c.s.cfg.IdleTimeout)
		if sec.SASL && !c.sasl.authenticated && authDeadline.Before(deadline) {
			deadline = authDeadline // a client may not sit unauthenticated on a connection
		}
		c.nc.SetReadDeadline(deadline)
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		start := time.Now()
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if c.sasl.raw {
			// After a v0 SaslHandshake the client sends bare tokens, which may be short.
			resp, err := c.readRawToken(br, size)
			if err == nil {
				err = c.enqueue(queue, queued{resp: resp, start: start})
			}
			if err != nil {
				return err
			}
			continue
		}
		if size < 8 || size > c.s.cfg.MaxRequestBytes {
			return &errFrame{"size", fmt.Sprintf("frame of %d bytes (limit %d)", size, c.s.cfg.MaxRequestBytes)}
		}
		frame, err := readFrame(br, int(size))
		if err != nil {
			return err
		}
		if m := c.s.cfg.Metrics; m != nil {
			m.bytesIn.Add(float64(size) + 4)
		}
		req, fallback, err := decodeRequest(frame)
		if err != nil {
			return err
		}
		if sec.SASL && !fallback {
			resp, handled, err := c.gateSASL(req)
			if handled {
				if resp != nil {
					if qerr := c.enqueue(queue, queued{key: req.Key, version: req.Version, correlationID: req.CorrelationID, resp: resp, start: start}); qerr != nil {
						return qerr
					}
				}
				if err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		req.Conn, req.Received = c.info, start
		var resp Response
		if fallback {
			resp = c.apiVersionsFallback()
		} else {
			resp = c.s.handler.Handle(c.ctx, req)
			if releaser != nil && releaser.ReleasesFrame(req.Key) {
				putFrame(frame) // the next request, on any connection, may be read into it
			}
		}
		if sec.SASL && req.Key == int16(kmsg.ApiVersions) {
			resp = withSASLVersions(resp)
		}
		select {
		case queue <- queued{key: req.Key, version: req.Version, correlationID: req.CorrelationID, resp: resp, start: start}:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
}

// decodeRequest parses a frame. fallback reports an ApiVersions request of a version we
// cannot decode, which is answered with v0 as Kafka does.
func decodeRequest(frame []byte) (*Request, bool, error) {
	key := int16(binary.BigEndian.Uint16(frame))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	req := &Request{Key: key, Version: version, CorrelationID: int32(binary.BigEndian.Uint32(frame[4:]))}
	body := kmsg.RequestForKey(key)
	if body == nil {
		return nil, false, &errFrame{"api-key", fmt.Sprintf("unknown api key %d", key)}
	}
	if version < 0 || version > body.MaxVersion() {
		if key == int16(kmsg.ApiVersions) {
			return req, true, nil
		}
		return nil, false, &errFrame{"version", fmt.Sprintf("%s v%d is not supported", kmsg.NameForKey(key), version)}
	}
	body.SetVersion(version)
	rest := frame[8:]
	// Client id: a nullable int16-length string, in every header version we read.
	if len(rest) < 2 {
		return nil, false, &errFrame{"header", "truncated client id"}
	}
	idLen := int16(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if idLen >= 0 {
		if int(idLen) > len(rest) {
			return nil, false, &errFrame{"header", "truncated client id"}
		}
		id := string(rest[:idLen])
		req.ClientID = &id
		rest = rest[idLen:]
	}
	if body.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return nil, false, &errFrame{"header", err.Error()}
		}
	}
	if err := DecodeBody(body, rest); err != nil {
		return nil, false, &errFrame{"body", fmt.Sprintf("%s v%d: %v", kmsg.NameForKey(key), version, err)}
	}
	req.Body = body
	return req, false, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 || n > uint64(len(b)) {
		return nil, errors.New("bad header tagged fields")
	}
	b = b[used:]
	for i := uint64(0); i < n; i++ {
		if _, used = binary.Uvarint(b); used <= 0 {
			return nil, errors.New("bad header tag")
		}
		b = b[used:]
		size, used := binary.Uvarint(b)
		if used <= 0 || size > uint64(len(b)-used) {
			return nil, errors.New("bad header tag size")
		}
		b = b[used+int(size):]
	}
	return b, nil
}

func (c *conn) apiVersionsFallback() Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	if vl, ok := c.s.handler.(VersionLister); ok {
		resp.ApiKeys = vl.SupportedVersions()
	}
	return resp
}

func (c *conn) writeLoop(queue <-chan queued) {
	defer func() {
		if r := recover(); r != nil {
			c.s.cfg.Logger.Error("response panic; closing connection", "remote", c.info.Remote.String(), "panic", r, "stack", string(debug.Stack()))
			c.nc.Close()
			for range queue {
			}
		}
	}()
	w := &responseWriter{nc: c.nc}
	failed := false
	for q := range queue {
		if failed {
			continue // drain so the reader never blocks; the connection is closing
		}
		resp := q.resp
		if p, ok := resp.(Pending); ok {
			resp = p.Wait(c.ctx)
		}
		if resp == nil {
			c.observe(q, 0)
			continue
		}
		n, err := c.writeResponse(w, q, resp, len(queue) == 0)
		if err != nil {
			failed = true
			c.nc.Close()
			continue
		}
		c.observe(q, n)
	}
	if !failed {
		w.flush()
	}
}

func (c *conn) observe(q queued, n int) {
	if m := c.s.cfg.Metrics; m != nil {
		m.observe(q.key, q.version, time.Since(q.start), n)
	}
}

// writeResponse frames one answer. Writing is deferred while more answers are queued, so
// pipelined responses go out together in one writev.
func (c *conn) writeResponse(w *responseWriter, q queued, resp Response, flush bool) (int, error) {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	buf := w.buffer()
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(q.correlationID))
	flexible := false
	if tok, ok := resp.(rawToken); ok {
		// A bare SASL token has only its length in front (v0 SaslHandshake).
		buf = binary.BigEndian.AppendUint32(buf[:0], uint32(len(tok)))
		buf = append(buf, tok...)
		w.queue(buf)
		return len(buf), w.flush()
	}
	switch r := resp.(type) {
	case kmsg.Response:
		v := q.version
		if av, ok := r.(*kmsg.ApiVersionsResponse); ok && av.ErrorCode == kerr.UnsupportedVersion.Code {
			v = 0 // a client asking a version we lack is answered in v0, which it can read
		}
		r.SetVersion(v)
		flexible = r.IsFlexible()
	case BodyWriter:
		probe := kmsg.ResponseForKey(q.key)
		probe.SetVersion(q.version)
		flexible = probe.IsFlexible()
	case closeSentinel:
		w.release(buf)
		// The answers before this one are still owed to the client.
		if err := w.flush(); err != nil {
			return 0, err
		}
		return 0, errors.New("handler asked to close the connection")
	default:
		w.release(buf)
		return 0, fmt.Errorf("handler answered %T", resp)
	}
	// ApiVersions responses always use header v0, whatever the request's version.
	if flexible && q.key != int16(kmsg.ApiVersions) {
		buf = append(buf, 0)
	}
	switch r := resp.(type) {
	case kmsg.Response:
		buf = r.AppendTo(buf)
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		w.queue(buf)
		if flush {
			return len(buf), w.flush()
		}
		return len(buf), nil
	case BodyWriter:
		total := len(buf) + r.BodyLen()
		binary.BigEndian.PutUint32(buf, uint32(total-4))
		w.queue(buf)
		err := r.WriteBody(c.nc, w.pending)
		w.written()
		return total, err
	}
	return 0, nil
}

// Bounds on the encoding buffers a connection keeps for reuse.
const (
	maxSpareBuffers    = 16
	maxSpareBufferSize = 1 << 20
)

// responseWriter gathers encoded answers and writes them with one writev (net.Buffers)
// when the queue runs dry, then keeps their buffers for the next answers: in steady state
// a connection encodes into the same few buffers and allocates nothing to answer.
type responseWriter struct {
	nc      net.Conn
	pending net.Buffers // encoded answers not yet written, in order
	owned   [][]byte    // the buffers behind pending, whole, to reuse once written
	spare   [][]byte
}

// buffer returns an empty buffer to encode an answer into.
func (w *responseWriter) buffer() []byte {
	if n := len(w.spare); n > 0 {
		b := w.spare[n-1]
		w.spare = w.spare[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 4<<10)
}

// release gives back a buffer that was not queued.
func (w *responseWriter) release(b []byte) {
	if cap(b) <= maxSpareBufferSize && len(w.spare) < maxSpareBuffers {
		w.spare = append(w.spare, b)
	}
}

// queue adds an encoded answer to be written in order.
func (w *responseWriter) queue(b []byte) {
	w.pending = append(w.pending, b)
	w.owned = append(w.owned, b)
}

// flush writes every queued answer in one writev.
func (w *responseWriter) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	bufs := w.pending // WriteTo consumes the slice it is called on
	_, err := bufs.WriteTo(w.nc)
	w.written()
	return err
}

// written forgets the queued answers, which are on the wire, and keeps their buffers.
func (w *responseWriter) written() {
	for _, b := range w.owned {
		w.release(b)
	}
	clear(w.owned)
	w.owned = w.owned[:0]
	clear(w.pending)
	w.pending = w.pending[:0]
}
