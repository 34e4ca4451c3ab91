package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

const restartLimit = 60 * time.Second

// base is the common shape: RF 3, min.insync.replicas 2, several partitions.
func base(name string, nodes int, inject func(t *testing.T, r *env, rep int, begin func(string)) func() error) scenario {
	return scenario{name: name, nodes: nodes, rf: 3, minISR: 2, partitions: 6, tmpfsNode: -1, reps: 1, hold: 4 * time.Second, inject: inject}
}

// TestSingleNodeKill9 runs the whole pipeline on one node (RF 1): kill -9 under load and a
// restart on the same data. With fsync=always nothing acknowledged may be lost.
func TestSingleNodeKill9(t *testing.T) {
	sc := scenario{name: "1 node kill -9 (RF1)", nodes: 1, rf: 1, minISR: 1, partitions: 4, tmpfsNode: -1, reps: 2, hold: time.Second,
		inject: func(t *testing.T, r *env, rep int, begin func(string)) func() error {
			n := r.c.Nodes[0]
			begin("kill -9 node 1")
			n.Kill()
			return func() error { return n.Start(restartLimit) }
		}}
	runScenario(t, sc)
}

// TestSingleNodeCut cuts the only node off the network (its namespace's link down) under
// load and heals it: the pipeline through network namespaces, on one node.
func TestSingleNodeCut(t *testing.T) {
	sc := scenario{name: "1 node cut off (RF1)", nodes: 1, rf: 1, minISR: 1, partitions: 4, tmpfsNode: -1, reps: 1, hold: 2 * time.Second, netns: true,
		inject: func(t *testing.T, r *env, rep int, begin func(string)) func() error {
			begin("cut off node 1")
			if err := r.c.Net.Cut(0); err != nil {
				t.Fatal(err)
			}
			return func() error { return r.c.Net.Heal(0) }
		}}
	runScenario(t, sc)
}

// TestSingleNodeFullDisk fills the only node's disk under load, then frees it.
func TestSingleNodeFullDisk(t *testing.T) {
	sc := scenario{name: "1 node full disk (RF1)", nodes: 1, rf: 1, minISR: 1, partitions: 4, tmpfsNode: 0, reps: 1, hold: 2 * time.Second, inject: fullDisk}
	runScenario(t, sc)
}

// TestSingleNodeSIGTERM restarts the only node with a controlled shutdown under load.
func TestSingleNodeSIGTERM(t *testing.T) {
	sc := scenario{name: "1 node SIGTERM restart (RF1)", nodes: 1, rf: 1, minISR: 1, partitions: 4, tmpfsNode: -1, reps: 1, inject: rollingRestart}
	runScenario(t, sc)
}

func TestKillLeader(t *testing.T)   { runScenario(t, base("kill -9 leader", 3, killLeader)) }
func TestKillFollower(t *testing.T) { runScenario(t, base("kill -9 follower", 3, killFollower)) }
func TestKillController(t *testing.T) {
	runScenario(t, base("kill -9 controller", 3, killController))
}

// TestKillTwo kills a partition's leader and one of its followers at once: with RF 3 and
// min.insync.replicas 2 no write may be acknowledged until one of them is back, and none
// acknowledged before may be lost.
func TestKillTwo(t *testing.T) {
	sc := base("kill -9 two of three", 3, killTwo)
	sc.belowMinISR = true
	runScenario(t, sc)
}

func TestPauseLeader(t *testing.T) { runScenario(t, base("SIGSTOP leader", 3, pauseLeader)) }

func TestPauseController(t *testing.T) {
	runScenario(t, base("SIGSTOP controller", 3, pauseController))
}

func TestCutLeader(t *testing.T) {
	sc := base("cut off leader", 3, cutLeader)
	sc.netns = true
	runScenario(t, sc)
}

func TestSlowLeader(t *testing.T) {
	sc := base("slow link (256kbit) leader", 3, slowLeader)
	sc.netns = true
	runScenario(t, sc)
}

func TestRollingRestart(t *testing.T) {
	sc := base("rolling restart", 3, rollingRestart)
	sc.reps, sc.hold = 3, 0 // one repetition per node
	runScenario(t, sc)
}

func TestFullDisk(t *testing.T) {
	sc := base("full disk on one node", 3, fullDisk)
	sc.tmpfsNode = 0
	runScenario(t, sc)
}

// The 5-node variants run in the long form only.
func TestFiveNodes(t *testing.T) {
	if !long {
		t.Skip("5-node variants run with STRAND_FAULTS_LONG=1")
	}
	for _, sc := range []scenario{
		base("5 nodes kill -9 leader", 5, killLeader),
		base("5 nodes kill -9 controller", 5, killController),
		base("5 nodes SIGSTOP leader", 5, pauseLeader),
	} {
		t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
	}
	sc := base("5 nodes cut off leader", 5, cutLeader)
	sc.netns = true
	t.Run(sc.name, func(t *testing.T) { runScenario(t, sc) })
}

// leader finds a running node that leads a partition of the topic, starting at partition
// rep so repetitions move around, and preferring a leader that is not the controller, so
// that killing it tests partition failover rather than both at once.
func leader(t *testing.T, r *env, rep int) *Node {
	t.Helper()
	var found *Node
	err := waitFor(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		parts, err := r.c.Partitions(ctx, r.topic)
		if err != nil {
			return false
		}
		controller, _ := r.c.Controller(ctx)
		found = nil
		for i := int32(0); i < r.w.Partitions; i++ {
			n := r.c.Node(parts[(int32(rep)+i)%r.w.Partitions].Leader)
			if n == nil || !n.Running() {
				continue
			}
			if found == nil || n.ID != controller && found.ID == controller {
				found = n
			}
		}
		return found != nil
	})
	if err != nil {
		t.Fatalf("no running partition leader: %v", err)
	}
	return found
}

func killLeader(t *testing.T, r *env, rep int, begin func(string)) func() error {
	n := leader(t, r, rep)
	begin(fmt.Sprintf("kill -9 leader node %d", n.ID))
	n.Kill()
	return func() error { return n.Start(restartLimit) }
}

func killFollower(t *testing.T, r *env, rep int, begin func(string)) func() error {
	p := int32(rep) % r.w.Partitions
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts, err := r.c.Partitions(ctx, r.topic)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	controller, _ := r.c.Controller(ctx)
	var n *Node
	for _, id := range parts[p].Replicas {
		if id != parts[p].Leader && slices.Contains(parts[p].ISR, id) && (n == nil || n.ID == controller) {
			n = r.c.Node(id)
		}
	}
	if n == nil {
		t.Fatalf("partition %d has no in-sync follower: %+v", p, parts[p])
	}
	begin(fmt.Sprintf("kill -9 follower node %d", n.ID))
	n.Kill()
	return func() error { return n.Start(restartLimit) }
}

func killTwo(t *testing.T, r *env, rep int, begin func(string)) func() error {
	a := leader(t, r, rep)
	var b *Node
	for _, n := range r.c.Nodes {
		if n != a && n.Running() {
			b = n
			break
		}
	}
	a.Kill()
	b.Kill()
	begin(fmt.Sprintf("kill -9 nodes %d and %d", a.ID, b.ID)) // after both: the window where no ack is allowed
	return func() error { return errors.Join(a.Start(restartLimit), b.Start(restartLimit)) }
}

func killController(t *testing.T, r *env, rep int, begin func(string)) func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := r.c.Controller(ctx)
	n := r.c.Node(id)
	if err != nil || n == nil {
		t.Fatalf("controller: id %d, %v", id, err)
	}
	begin(fmt.Sprintf("kill -9 controller node %d", n.ID))
	n.Kill()
	return func() error { return n.Start(restartLimit) }
}

func pauseLeader(t *testing.T, r *env, rep int, begin func(string)) func() error {
	n := leader(t, r, rep)
	begin(fmt.Sprintf("SIGSTOP leader node %d", n.ID))
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	return n.Resume
}

func pauseController(t *testing.T, r *env, rep int, begin func(string)) func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := r.c.Controller(ctx)
	n := r.c.Node(id)
	if err != nil || n == nil {
		t.Fatalf("controller: id %d, %v", id, err)
	}
	begin(fmt.Sprintf("SIGSTOP controller node %d", n.ID))
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	return n.Resume
}

func cutLeader(t *testing.T, r *env, rep int, begin func(string)) func() error {
	n := leader(t, r, rep)
	begin(fmt.Sprintf("cut off leader node %d", n.ID))
	if err := r.c.Net.Cut(n.Index); err != nil {
		t.Fatal(err)
	}
	return func() error { return r.c.Net.Heal(n.Index) }
}

func slowLeader(t *testing.T, r *env, rep int, begin func(string)) func() error {
	n := leader(t, r, rep)
	begin(fmt.Sprintf("slow link on leader node %d", n.ID))
	if err := r.c.Net.Slow(n.Index, "256kbit"); err != nil {
		t.Fatal(err)
	}
	return func() error { return r.c.Net.Unslow(n.Index) }
}

// rollingRestart stops node rep with SIGTERM (a controlled shutdown, which must exit 0)
// and starts it again; the fault is healed once it is ready.
func rollingRestart(t *testing.T, r *env, rep int, begin func(string)) func() error {
	n := r.c.Nodes[rep%len(r.c.Nodes)]
	begin(fmt.Sprintf("SIGTERM node %d", n.ID))
	err := n.Stop(30 * time.Second)
	return func() error {
		if err != nil {
			t.Errorf("controlled shutdown: %v", err)
		}
		return n.Start(restartLimit)
	}
}

// fullDisk fills the tmpfs under one node's data dir; the heal frees the space and, if the
// node gave up and exited, starts it again (and says so).
func fullDisk(t *testing.T, r *env, rep int, begin func(string)) func() error {
	idx := 0
	n := r.c.Nodes[idx]
	begin(fmt.Sprintf("full disk on node %d", n.ID))
	filler, err := FillDisk(r.dirs[idx])
	if err != nil {
		t.Fatalf("fill disk: %v", err)
	}
	free, _ := FreeBytes(r.dirs[idx])
	t.Logf("node %d data dir full (%d bytes free)", n.ID, free)
	return func() error {
		if err := os.Remove(filler); err != nil {
			return err
		}
		if !n.Running() {
			t.Logf("node %d exited on a full disk; log: %v", n.ID, n.LogLines("no space", "ENOSPC", "exited"))
			return n.Start(restartLimit)
		}
		return nil
	}
}
