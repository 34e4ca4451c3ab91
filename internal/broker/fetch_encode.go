package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/vfs"
)

// fetchBody is a Fetch response encoded by hand so that record bytes go from segment files
// to the socket with sendfile, never through user space (DESIGN D1's one exception to kmsg).
type fetchBody struct {
	version   int16
	errorCode int16
	sessionID int32
	topics    []fetchTopic
	bytes     int64 // record bytes in the response
	failed    bool  // some partition has an error

	pieces []piece
	length int

	sent *fetchSendCounters // nil in tests that build bodies by hand

	// committedAt holds, for a consumer fetch, when each partition's high watermark passed
	// the offset the consumer asked for, where records came back and the leader remembers
	// it: finishFetch observes the delay to the answer (strand_fetch_answer_delay_seconds).
	committedAt []time.Time
}

type fetchTopic struct {
	name       string
	partitions []fetchPartition
}

type fetchPartition struct {
	id                                  int32
	errorCode                           int16
	highWatermark, lastStable, logStart int64
	ranges                              []journal.FileRange
	size                                int64
	aborted                             []journal.AbortedTxn // read_committed: the range's aborted transactions
}

// piece is a run of encoded bytes or a file range to send as it is.
type piece struct {
	b    []byte
	file *journal.FileRange
}

// encoder writes Kafka's primitive types, flexible (compact) or not.
type encoder struct {
	flexible bool
	buf      []byte
	pieces   []piece
	n        int
}

func (e *encoder) i16(v int16) { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(v)) }
func (e *encoder) i32(v int32) { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v)) }
func (e *encoder) i64(v int64) { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }

func (e *encoder) arrayLen(n int) {
	if e.flexible {
		e.buf = binary.AppendUvarint(e.buf, uint64(n)+1)
	} else {
		e.i32(int32(n))
	}
}

func (e *encoder) nullArray() {
	if e.flexible {
		e.buf = append(e.buf, 0)
	} else {
		e.i32(-1)
	}
}

func (e *encoder) str(s string) {
	if e.flexible {
		e.buf = binary.AppendUvarint(e.buf, uint64(len(s))+1)
	} else {
		e.i16(int16(len(s)))
	}
	e.buf = append(e.buf, s...)
}

func (e *encoder) bytesLen(n int64) {
	if e.flexible {
		e.buf = binary.AppendUvarint(e.buf, uint64(n)+1)
	} else {
		e.i32(int32(n))
	}
}

func (e *encoder) tags() {
	if e.flexible {
		e.buf = append(e.buf, 0)
	}
}

func (e *encoder) file(r journal.FileRange) {
	e.cut()
	e.pieces = append(e.pieces, piece{file: &r})
	e.n += int(r.Len)
}

func (e *encoder) cut() {
	if len(e.buf) > 0 {
		e.pieces = append(e.pieces, piece{b: e.buf})
		e.n += len(e.buf)
		e.buf = nil
	}
}

func (f *fetchBody) encode() {
	if f.pieces != nil {
		return
	}
	e := &encoder{flexible: f.version >= 12}
	e.i32(0) // throttle
	if f.version >= 7 {
		e.i16(f.errorCode)
		e.i32(f.sessionID)
	}
	e.arrayLen(len(f.topics))
	for _, t := range f.topics {
		e.str(t.name)
		e.arrayLen(len(t.partitions))
		for _, p := range t.partitions {
			e.i32(p.id)
			e.i16(p.errorCode)
			e.i64(p.highWatermark)
			e.i64(p.lastStable)
			if f.version >= 5 {
				e.i64(p.logStart)
			}
			if p.aborted == nil {
				e.nullArray()
			} else {
				e.arrayLen(len(p.aborted))
				for _, a := range p.aborted {
					e.i64(a.ProducerID)
					e.i64(a.FirstOffset)
					e.tags()
				}
			}
			if f.version >= 11 {
				e.i32(-1) // preferred read replica
			}
			e.bytesLen(p.size)
			for _, r := range p.ranges {
				e.file(r)
			}
			e.tags()
		}
		e.tags()
	}
	e.tags()
	e.cut()
	f.pieces, f.length = e.pieces, e.n
}

// BodyLen implements kafka.BodyWriter.
func (f *fetchBody) BodyLen() int {
	f.encode()
	return f.length
}

// WriteBody implements kafka.BodyWriter. The encoded runs between file ranges go out with
// one writev each (together with head, the frame header and any answers queued before
// this one), and file ranges with sendfile straight from the page cache when w is a TCP
// connection: record bytes never enter user space.
func (f *fetchBody) WriteBody(w io.Writer, head net.Buffers) error {
	f.encode()
	out := make(net.Buffers, 0, len(head)+len(f.pieces))
	out = append(out, head...)
	for _, p := range f.pieces {
		if p.file == nil {
			out = append(out, p.b)
			continue
		}
		if len(out) > 0 {
			if _, err := out.WriteTo(w); err != nil {
				return err
			}
			out = out[:0:0]
		}
		sent, copied, err := sendFile(w, *p.file)
		if f.sent != nil {
			f.sent.add(sent, copied)
		}
		if err != nil {
			return err
		}
	}
	if len(out) > 0 {
		_, err := out.WriteTo(w)
		return err
	}
	return nil
}

// sendFile copies a file range to w and says how many bytes went by sendfile and how many
// were copied through user space. When the file has an OS descriptor and w is a TCP
// connection it uses sendfile(2) with an explicit offset, so concurrent fetches of one
// segment never share a file position; any other pair (tests, in-memory file systems) is
// copied through a pooled buffer.
func sendFile(w io.Writer, r journal.FileRange) (sent, copied int64, err error) {
	tc, isTCP := w.(*net.TCPConn)
	desc, hasFd := r.File.(vfs.Descriptor)
	if !isTCP || !hasFd {
		copied, err = copyRange(w, r)
		return 0, copied, err
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	src, err := desc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	off, remaining := r.Pos, r.Len
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for remaining > 0 {
			// The segment's descriptor is held only for the call itself (the socket is
			// non-blocking), never while waiting for the socket, so closing a deleted
			// partition's log never waits for a slow client.
			var n int
			var e error
			if cerr := src.Control(func(srcFd uintptr) {
				n, e = unix.Sendfile(int(fd), int(srcFd), &off, int(min(remaining, 1<<30)))
			}); cerr != nil {
				werr = fmt.Errorf("sendfile: segment closed: %w", cerr)
				return true
			}
			if n > 0 {
				remaining -= int64(n)
			}
			switch {
			case e == unix.EAGAIN:
				return false // wait until the socket is writable
			case e == unix.EINTR:
				continue
			case e != nil:
				werr = fmt.Errorf("sendfile: %w", e)
				return true
			case n == 0:
				// The file ended early: a concurrent truncation. The frame length is already
				// on the wire, so the connection must close.
				werr = fmt.Errorf("sendfile: segment truncated with %d bytes unsent", remaining)
				return true
			}
		}
		return true
	})
	sent = r.Len - remaining
	if err != nil {
		return sent, 0, err
	}
	return sent, 0, werr
}
