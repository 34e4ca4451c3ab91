package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testCluster is a quorum of in-process nodes, each with its own data dir, raft over TCP
// on a free loopback port, and an HTTP test server carrying the metadata handler.
type testCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*Node // nil once stopped
	https []*httptest.Server
}

const (
	testHeartbeat = 50 * time.Millisecond
	testSession   = 600 * time.Millisecond
)

// freePorts finds count distinct free loopback ports, holding each until all are found.
func freePorts(t *testing.T, count int) []string {
	t.Helper()
	var out []string
	for range count {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

func startCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: make([]Config, size), nodes: make([]*Node, size), https: make([]*httptest.Server, size)}
	var voters []Voter
	for i, addr := range freePorts(t, size) {
		voters = append(voters, Voter{ID: int32(i + 1), Addr: addr})
	}
	for i := range size {
		h := NewHTTPHandler()
		mux := http.NewServeMux()
		h.Register(mux)
		c.https[i] = httptest.NewServer(mux)
		c.cfgs[i] = Config{NodeID: int32(i + 1), DataDir: t.TempDir(), ControllerAddr: voters[i].Addr, Voters: voters,
			KafkaAddr: "127.0.0.1:" + strconv.Itoa(19092+i), HTTPAddr: c.https[i].Listener.Addr().String(), HTTP: h,
			HeartbeatInterval: testHeartbeat, SessionTimeout: testSession,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i + 1)
			c.https[i].Close()
		}
	})
	for i := range size {
		c.open(i + 1)
	}
	c.waitReady(1, size)
	return c
}

// open starts node id. A restarted node binds its old raft port again, which an outgoing
// connection of another node may hold for a moment as its ephemeral port: retry briefly.
func (c *testCluster) open(id int) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := Open(context.Background(), c.cfgs[id-1])
		if err == nil {
			c.nodes[id-1] = n
			return
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			c.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady runs WaitReady on nodes from..to concurrently, as brokers starting together do.
func (c *testCluster) waitReady(from, to int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, to-from+1)
	var wg sync.WaitGroup
	for id := from; id <= to; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[id-from] = c.nodes[id-1].WaitReady(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Fatalf("node %d ready: %v", from+i, err)
		}
	}
}

func (c *testCluster) node(id int32) *Node { return c.nodes[id-1] }

func (c *testCluster) stop(id int) {
	if n := c.nodes[id-1]; n != nil {
		n.Close()
		c.nodes[id-1] = nil
	}
}

// leader waits for a running node that leads the quorum.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var found *Node
	eventually(c.t, 10*time.Second, "a raft leader", func() bool {
		for _, n := range c.nodes {
			if n != nil && n.raft.State() == raft.Leader {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// follower is a running node that does not lead the quorum.
func (c *testCluster) follower() *Node {
	c.t.Helper()
	l := c.leader()
	for _, n := range c.nodes {
		if n != nil && n != l {
			return n
		}
	}
	c.t.Fatal("no follower running")
	return nil
}

// running are the nodes not stopped.
func (c *testCluster) running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// everywhere waits until cond holds on the State of every running node.
func (c *testCluster) everywhere(timeout time.Duration, what string, cond func(*State) bool) {
	c.t.Helper()
	eventually(c.t, timeout, what, func() bool {
		for _, n := range c.running() {
			if !cond(n.State()) {
				return false
			}
		}
		return true
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func describe(p Partition) string {
	return fmt.Sprintf("leader %d epoch %d replicas %v isr %v pe %d", p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, p.PartitionEpoch)
}
