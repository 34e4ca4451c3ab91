package compat

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/test/harness"
)

// processCPU is the user and system CPU time pid has used, from /proc/pid/stat (utime
// and stime, fields 14 and 15, in USER_HZ = 100 ticks a second on Linux).
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// tagBombFrame is the request: OffsetForLeaderEpoch v4 (flexible) whose body is
// replica id -1, an empty topic array and a tagged-field count of 2^32-1 with nothing
// after it, 25 bytes on the wire. kmsg v1.15 as published loops 2^32 times decoding it
// (third_party/kmsg/PATCH.md).
func tagBombFrame(correlation uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, 21)
	b = binary.BigEndian.AppendUint16(b, uint16(kmsg.OffsetForLeaderEpoch))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = binary.BigEndian.AppendUint32(b, correlation)
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, 0)                             // no header tags
	return append(b, 0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f)
}

// TestTagBombFramesCostLittleCPU sends a real strand 1,000 tag-bomb frames, each on its
// own unauthenticated connection, while another client produces: the broker closes each
// offending connection, the whole attack costs the strand process under 1 s of CPU
// (measured from /proc, the producer's own load included), the producer goes on, and a
// metadata request is answered meanwhile. Before kmsg's tag loops were bounded, each frame
// cost about 40 s of CPU (the 1 s decode timeout closed the connection but could not stop
// the loop), so the attack took both cores for the test's whole window.
func TestTagBombFramesCostLittleCPU(t *testing.T) {
	const frames, workers = 1000, 20
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 2*time.Minute)
	cl := node.Client(t, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("bombed"))

	var acked atomic.Int64
	stop := make(chan struct{})
	produced := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				produced <- nil
				return
			default:
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				produced <- err
				return
			}
			acked.Add(1)
		}
	}()
	defer func() {
		close(stop)
		if err := <-produced; err != nil {
			t.Errorf("producer: %v", err)
		}
	}()
	for acked.Load() < 100 {
		if ctx.Err() != nil {
			t.Fatal("the producer did not get 100 records acknowledged")
		}
		time.Sleep(10 * time.Millisecond)
	}

	cpu0, acked0, start := processCPU(t, node.PID()), acked.Load(), time.Now()
	// The attack is bounded in time as well as count: against an unbounded decoder it
	// would otherwise take hours.
	deadline := start.Add(20 * time.Second)
	var sent, closed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < frames/workers && time.Now().Before(deadline); i++ {
				c, err := net.Dial("tcp", node.KafkaAddr)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(deadline)
				if _, err := c.Write(tagBombFrame(uint32(i))); err == nil {
					sent.Add(1)
					if rest, err := io.ReadAll(c); err == nil && len(rest) == 0 {
						closed.Add(1) // closed without an answer, as bad input is
					}
				}
				c.Close()
			}
		}()
	}
	// A metadata request from another client once 200 frames (the count) are in.
	for sent.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	meta := node.Client(t)
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Topics = append(mreq.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr("bombed")})
	metaStart := time.Now()
	mresp, merr := mreq.RequestWith(harness.Context(t, 30*time.Second), meta)
	metaTook := time.Since(metaStart)
	wg.Wait()
	attack := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the last connections' teardown be counted
	cpu := processCPU(t, node.PID()) - cpu0
	acked1 := acked.Load()
	for acked.Load() < acked1+50 && time.Since(start) < 40*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d tag-bomb frames sent, %d connections closed without answer, in %v; strand used %v of CPU meanwhile; %d records produced during the attack, %d more after it; metadata answered in %v",
		sent.Load(), closed.Load(), attack.Round(time.Millisecond), cpu, acked1-acked0, acked.Load()-acked1, metaTook.Round(time.Millisecond))
	if sent.Load() != frames || closed.Load() != frames {
		t.Errorf("%d of %d frames sent and %d connections closed by the broker within %v", sent.Load(), frames, closed.Load(), deadline.Sub(start))
	}
	if cpu >= time.Second {
		t.Errorf("%d tag-bomb frames cost strand %v of CPU, want under 1s", sent.Load(), cpu)
	}
	if merr != nil || len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 || len(mresp.Topics[0].Partitions) == 0 {
		t.Errorf("metadata during the attack: %v %+v", merr, mresp)
	}
	if acked.Load() < acked1+50 {
		t.Errorf("the producer got %d records acknowledged after the attack, want 50", acked.Load()-acked1)
	}
}
