package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/vfs"
)

// memRange is a file on fs holding size patterned bytes, as a FileRange over [pos, pos+n).
func memRange(t *testing.T, fs vfs.FS, size int, pos, n int64) (journal.FileRange, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f, err := vfs.Create(fs, "/seg.log")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	t.Cleanup(func() { f.Close() })
	return journal.FileRange{File: f, Pos: pos, Len: n}, data
}

func TestCopyRangeWithoutDescriptor(t *testing.T) {
	m := vfs.NewMem()
	// Longer than the copy buffer, starting off a chunk boundary.
	r, data := memRange(t, m, 3*copyBufSize, 1000, 2*copyBufSize+17)
	var out bytes.Buffer
	sent, copied, err := sendFile(&out, r)
	if err != nil || sent != 0 || copied != r.Len {
		t.Fatalf("sendFile: sent %d copied %d err %v, want 0, %d, nil", sent, copied, err, r.Len)
	}
	if !bytes.Equal(out.Bytes(), data[r.Pos:r.Pos+r.Len]) {
		t.Fatal("copied bytes differ from the file's")
	}

	// A file shorter than the range (a concurrent truncation): an error, and the count says
	// what really went out.
	out.Reset()
	r.Len = int64(len(data)) - r.Pos + 5
	n, err := copyRange(&out, r)
	if err == nil || n != int64(len(data))-r.Pos || int64(out.Len()) != n {
		t.Fatalf("short file: copied %d (buffer %d), err %v", n, out.Len(), err)
	}

	// A read error is returned, wrapped.
	faulty := vfs.NewFaulty(m)
	fr, _ := memRange(t, faulty, 100, 0, 100)
	faulty.Inject(vfs.Rule{Ops: vfs.OpRead, Path: "seg.log"})
	out.Reset()
	if n, err := copyRange(&out, fr); !errors.Is(err, syscall.EIO) || n != 0 || out.Len() != 0 {
		t.Fatalf("read error: copied %d, err %v", n, err)
	}
}

// readPeer accepts one connection on ln and, once release is closed (nil: at once), reads
// it to the end and hands over what it read.
func readPeer(ln net.Listener, release <-chan struct{}) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		if release != nil {
			<-release
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return got
}

// TestSendFileToTCPWithoutDescriptorCopies: a TCP connection with a file that has no
// descriptor (an in-memory file system) cannot use sendfile and must say it copied.
func TestSendFileToTCPWithoutDescriptorCopies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := readPeer(ln, nil)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, data := memRange(t, vfs.NewMem(), 100000, 10, 99000)
	sent, copied, err := sendFile(conn, r)
	conn.Close()
	if err != nil || sent != 0 || copied != r.Len {
		t.Fatalf("sendFile over TCP from memory: sent %d copied %d err %v", sent, copied, err)
	}
	if b := <-got; !bytes.Equal(b, data[10:10+99000]) {
		t.Fatalf("peer received %d bytes, not the range", len(b))
	}
}

// TestBrokerOnMemFS runs a broker whose journals live on an in-memory file system: produce
// and consume work, and the fetch counters report the record bytes as copied.
func TestBrokerOnMemFS(t *testing.T) {
	m := vfs.NewMem()
	br, _ := startBrokerWith(t, t.TempDir(), func(c *Config) { c.FS = m })
	ctx := testContext(t)
	prod := client(t, br, kgo.DefaultProduceTopic("mem"), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, prod, "mem", 1, nil)
	value := []byte(strings.Repeat("m", 500))
	const records = 200
	for range records {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := m.ReadDir(br.cfg.DataDir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no partition directory on the in-memory file system: %v %v", ents, err)
	}
	cons := client(t, br, kgo.ConsumeTopics("mem"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < records {
		fetches := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, records, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if !bytes.Equal(r.Value, value) {
				t.Fatalf("record %d value differs", got)
			}
			got++
		})
	}
	cons.Close()
	if sent := testutil.ToFloat64(br.metrics.fetchSent.sendfile); sent != 0 {
		t.Fatalf("%v bytes went by sendfile from an in-memory file", sent)
	}
	// Every consumed byte was copied; the rest is batch and record framing.
	copied := testutil.ToFloat64(br.metrics.fetchSent.copied)
	out := testutil.ToFloat64(br.metrics.bytesOut.WithLabelValues("mem"))
	if copied < records*500 || copied > out {
		t.Fatalf("%v bytes counted as copied for %d value bytes consumed and %v record bytes answered", copied, records*500, out)
	}
}

// TestSendFileWhileTheSegmentCloses: a deleted partition's log closes its segment files
// while a fetch answer is still being sent from one to a slow reader. The descriptor is held
// only for each sendfile call, so the close neither waits for the reader nor pulls the
// descriptor from under a call (the race detector checks that); the send then ends with an
// error, after a prefix of the range's true bytes.
func TestSendFileWhileTheSegmentCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	size := 64 << 20 // far more than the socket buffers hold
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	path := t.TempDir() + "/seg.log"
	if err := vfs.WriteFileSynced(vfs.OS{}, path, data); err != nil {
		t.Fatal(err)
	}
	f, err := vfs.Open(vfs.OS{}, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(vfs.Descriptor); !ok {
		t.Fatal("an OS file has no descriptor")
	}
	release := make(chan struct{})
	got := readPeer(ln, release) // reads nothing until the file is closed
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	type result struct {
		sent int64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sent, _, err := sendFile(conn, journal.FileRange{File: f, Pos: 0, Len: int64(size)})
		conn.Close()
		done <- result{sent, err}
	}()
	time.Sleep(100 * time.Millisecond) // the send fills the socket buffers and waits
	closed := make(chan error, 1)
	go func() { closed <- f.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the segment waited for the slow reader")
	}
	close(release)
	res := <-done
	b := <-got
	if res.err == nil || res.sent >= int64(size) {
		t.Fatalf("send of a closed segment: sent %d of %d, err %v", res.sent, size, res.err)
	}
	if int64(len(b)) != res.sent || !bytes.Equal(b, data[:len(b)]) {
		t.Fatalf("peer received %d bytes (sent %d), not a prefix of the range", len(b), res.sent)
	}
}
