package cluster

import (
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The integrity scenarios of issue 8: what Jepsen did to NATS JetStream (a flipped bit, a
// truncated file, a power failure of every node, an OS crash amid other faults, a failing
// disk), each against a running cluster under an acks=all load. Each prints its row
// (IntegrityHeader) and checks: nothing acknowledged lost, replicas identical below the high
// watermark, data dirs clean under `strand debug verify`.

const (
	damageFoundLimit = 30 * time.Second // from a flipped bit to the broker logging it
	repairLimit      = 90 * time.Second // from the damage to verify-clean and full ISRs
	moveLimit        = 30 * time.Second // from a disk failure to writes acknowledged elsewhere
)

// TestIntegrityBitFlips flips a bit in a closed segment of one follower of five, then of the
// leader, then of two replicas at different offsets; each time the damaged replica must be
// found, repaired from the others, and end byte-identical to them.
func TestIntegrityBitFlips(t *testing.T) {
	scrub := []string{"--scrub-idle", "200ms", "--scrub-bytes-per-second", fmt.Sprint(64 << 20)}
	r := startIntegrity(t, "bit flips (5 nodes, RF 5)", integrityOptions{Nodes: 5, RF: 5, Partitions: 3, Args: scrub})
	const p = 0
	phases := []struct {
		name    string
		targets func(leader int32, followers []*Node) []*Node
	}{
		{"a follower", func(_ int32, fs []*Node) []*Node { return fs[:1] }},
		{"the leader", func(l int32, _ []*Node) []*Node { return []*Node{r.c.Node(l)} }},
		{"two replicas at different offsets", func(_ int32, fs []*Node) []*Node { return fs[len(fs)-2:] }},
	}
	for _, ph := range phases {
		leader, _, isr := r.partition(p)
		var followers []*Node
		for _, id := range isr {
			if id != leader {
				followers = append(followers, r.c.Node(id))
			}
		}
		if len(followers) < 2 {
			t.Fatalf("before flipping a bit in %s: p%d's ISR %v has fewer than two followers", ph.name, p, isr)
		}
		targets := ph.targets(leader, followers)
		var picked []LocatedBatch
		for i, n := range targets {
			b := r.pickClosedBatch(n, p, 3, i+1)
			if slices.ContainsFunc(picked, func(o LocatedBatch) bool { return o.Base == b.Base }) {
				t.Fatalf("picked the same batch %d twice", b.Base)
			}
			picked = append(picked, b)
		}
		fault := r.h.BeginFault("bit flip in " + ph.name)
		flipped := time.Now()
		found := map[*Node]int{}
		for i, n := range targets {
			found[n] = len(n.LogLines(logDamageFound))
			b := picked[i]
			if err := FlipBit(b.File, RecordsMiddle(b)); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: flipped a bit of node %d's batch %d-%d (%s@%d, %d bytes) of p%d; leader is node %d",
				ph.name, n.ID, b.Base, b.Last, b.File, RecordsMiddle(b), b.Size, p, leader)
		}
		r.h.HealStarting(fault)
		for _, n := range targets {
			if err := waitFor(damageFoundLimit, func() bool { return len(n.LogLines(logDamageFound)) > found[n] }); err != nil {
				t.Errorf("%s: node %d never logged %q for the flipped bit: %v", ph.name, n.ID, logDamageFound, err)
			}
		}
		for _, n := range targets {
			took, err := r.waitRepaired(n, flipped, repairLimit)
			if err != nil {
				t.Errorf("%s: %v", ph.name, err)
				continue
			}
			t.Logf("%s: node %d verify-clean with every ISR full %.1fs after the flip", ph.name, n.ID, took.Seconds())
		}
		r.h.HealFault(fault)
	}
	r.finish()
}

// pickClosedBatch waits (bounded) until node n holds at least want batches of partition p
// in closed segments below the high watermark, and picks the one at fraction k/(want+1)
// of them, so that different k pick different offsets.
func (r *integrity) pickClosedBatch(n *Node, p int32, want, k int) LocatedBatch {
	r.t.Helper()
	dir := PartitionDir(n.DataDir, r.topic, p)
	var closed []LocatedBatch
	err := waitFor(60*time.Second, func() bool {
		leader, _, _ := r.partition(p)
		hw, err := r.c.Node(leader).Metric("strand_high_watermark", `topic="`+r.topic+`"`, fmt.Sprintf(`partition="%d"`, p))
		if err != nil {
			return false
		}
		closed, err = ClosedBatches(dir, int64(hw))
		return err == nil && len(closed) >= want
	})
	if err != nil {
		r.t.Fatalf("node %d never held %d batches of p%d in closed segments: %v", n.ID, want, p, err)
	}
	return closed[len(closed)*k/(want+1)]
}

// TestIntegrityTruncatedSegment stops the leader of a partition with kill -9, cuts the newest
// segment of each of its partitions to half, and starts it again: what it lost was
// acknowledged, so it must copy it back from the others, not lead without it, and rejoin.
func TestIntegrityTruncatedSegment(t *testing.T) {
	r := startIntegrity(t, "newest segment cut short (3 nodes)", integrityOptions{Nodes: 3, RF: 3, Partitions: 3})
	leader, _, _ := r.partition(0)
	n := r.c.Node(leader)
	if err := waitFor(60*time.Second, func() bool {
		segs, _ := Segments(PartitionDir(n.DataDir, r.topic, 0))
		return len(segs) >= 2
	}); err != nil {
		t.Fatalf("node %d never rolled a segment of p0: %v", n.ID, err)
	}
	time.Sleep(time.Second) // a recovery point written past some of what the cut takes
	hws := r.highWatermarks()
	fault := r.h.BeginFault(fmt.Sprintf("kill -9 node %d, cut its newest segments", n.ID))
	n.Kill()
	for p := int32(0); p < r.partitions; p++ {
		what, err := TruncateNewest(PartitionDir(n.DataDir, r.topic, p))
		if err != nil {
			t.Fatalf("p%d: %v", p, err)
		}
		t.Logf("node %d p%d: %s", n.ID, p, what)
	}
	r.h.HealStarting(fault)
	started := time.Now()
	if err := n.Start(restartLimit); err != nil {
		t.Errorf("restart after truncation: %v", err)
	}
	r.h.HealFault(fault)
	// Rejoined: the node holds again at least what was acknowledged when it was killed, and
	// is in every ISR.
	if err := waitFor(repairLimit, func() bool { return r.logEndsReach(n, hws) && r.fullISR() }); err != nil {
		t.Errorf("node %d did not copy back %v and rejoin every ISR after its segments were cut: %v", n.ID, hws, err)
	} else {
		r.noteWait(time.Since(started))
		t.Logf("node %d back in every ISR %.1fs after its restart", n.ID, time.Since(started).Seconds())
	}
	if err := waitFor(moveLimit, func() bool { return r.w.AckedSince(started) }); err != nil {
		t.Errorf("not every partition took a write after the restart: %v", err)
	}
	r.finish()
}

// TestIntegrityAllCrash kills every node at once (kill -9, real disk) at a random moment of
// the load, again and again; under fsync=always nothing acknowledged may be lost, and the
// replicas must agree on every offset below the high watermark.
func TestIntegrityAllCrash(t *testing.T) {
	cycles := 30
	if long {
		cycles = 100
	}
	r := startIntegrity(t, fmt.Sprintf("every node kill -9 x%d (3 nodes)", cycles), integrityOptions{Nodes: 3, RF: 3, Partitions: 3})
	for i := range cycles {
		time.Sleep(200*time.Millisecond + mathrand.N(1300*time.Millisecond)) // the load until the crash
		fault := r.h.BeginFault(fmt.Sprintf("kill -9 every node (%d/%d)", i+1, cycles))
		var wg sync.WaitGroup
		for _, n := range r.c.Nodes {
			wg.Go(n.Kill)
		}
		wg.Wait()
		r.h.HealStarting(fault)
		started := time.Now()
		for _, n := range r.c.Nodes {
			if err := n.spawn(); err != nil {
				t.Fatalf("cycle %d: %v", i+1, err)
			}
		}
		if err := r.c.WaitReady(restartLimit); err != nil {
			t.Fatalf("cycle %d: after killing every node: %v", i+1, err)
		}
		r.h.HealFault(fault)
		if err := waitFor(moveLimit, func() bool { return r.w.AckedSince(started) }); err != nil {
			t.Fatalf("cycle %d: not every partition took a write after the restart: %v", i+1, err)
		}
		r.noteWait(time.Since(started))
	}
	t.Logf("%d cycles; slowest from restart to a write acknowledged on every partition: %.1fs", cycles, r.repairMax.Seconds())
	r.finish()
}

// TestIntegrityOSCrashPauseCut: node A keeps unsynced writes in memory only
// (--unsafe-volatile-writes); under load node B is paused, node C cut off, and A's "OS
// crashes" (kill -9: what it never synced is gone). Then A restarts, B resumes, C heals.
// Under fsync=always every acknowledged record was synced where it was acknowledged.
func TestIntegrityOSCrashPauseCut(t *testing.T) {
	r := startIntegrity(t, "OS crash + pause + cut (3 nodes)", integrityOptions{Nodes: 3, RF: 3, Partitions: 3, Netns: true,
		NodeArgs: map[int][]string{0: {"--unsafe-volatile-writes"}}})
	a, b, c := r.c.Nodes[0], r.c.Nodes[1], r.c.Nodes[2]
	if len(a.LogLines("--unsafe-volatile-writes")) == 0 {
		t.Fatalf("node %d does not say it runs with volatile writes; the OS crash would not be simulated", a.ID)
	}
	time.Sleep(2 * time.Second) // load before the faults
	fault := r.h.BeginFault(fmt.Sprintf("pause %d, cut %d, OS crash %d", b.ID, c.ID, a.ID))
	if err := b.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := r.c.Net.Cut(c.Index); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	a.Kill()
	r.h.HealStarting(fault)
	started := time.Now()
	if err := a.spawn(); err != nil {
		t.Fatal(err)
	}
	if err := b.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := r.c.Net.Heal(c.Index); err != nil {
		t.Fatal(err)
	}
	if err := r.c.WaitReady(restartLimit); err != nil {
		t.Fatalf("after the OS crash: %v", err)
	}
	r.h.HealFault(fault)
	if err := waitFor(restartLimit, func() bool { return r.w.AckedSince(started) }); err != nil {
		t.Errorf("not every partition took a write after healing: %v", err)
	}
	if err := waitFor(repairLimit, r.fullISR); err != nil {
		t.Errorf("ISRs not full after healing: %v", err)
	} else {
		r.noteWait(time.Since(started))
	}
	r.restartPlain(a)
	r.finish()
}

// restartPlain stops a node that runs on volatile writes and starts it on the real file
// system. Its every exit, a clean one too, is an OS crash: what it never synced is gone. Files
// the journal may leave unsynced (checksummed, rebuilt at open; index files before the vfs
// branch synced them) are then reported by `strand debug verify`, so the final verify is of
// what a restart makes of that state, and the report right after the crash is logged.
func (r *integrity) restartPlain(n *Node) {
	t := r.t
	if err := n.Stop(30 * time.Second); err != nil {
		t.Errorf("controlled shutdown of the volatile node: %v", err)
	}
	if damaged, out, err := Verify(t, n.DataDir); err != nil {
		t.Error(err)
	} else if damaged {
		t.Logf("verify of node %d right after its volatile exit (an OS crash at exit):\n%s", n.ID, out)
	}
	delete(r.c.opts.NodeArgs, n.Index)
	if err := n.Start(restartLimit); err != nil {
		t.Fatalf("restart on the real file system: %v", err)
	}
	if err := waitFor(repairLimit, r.fullISR); err != nil {
		t.Errorf("ISRs not full after restarting node %d on the real file system: %v", n.ID, err)
	}
}

// TestIntegrityDiskErrors makes the disk of the leader of partition 0 fail its writes, then
// (on the next leader) its fsyncs, then its reads, with EIO on that partition's files only:
// the node must take the partition offline and say why in its log and metrics, the others
// must go on acknowledging writes to it, and nothing acknowledged may be lost.
func TestIntegrityDiskErrors(t *testing.T) {
	r := startIntegrity(t, "disk errors EIO (3 nodes)", integrityOptions{Nodes: 3, RF: 3, Partitions: 3,
		Args: []string{"--unsafe-disk-faults", "--scrub-idle", "200ms"}})
	const p = 0
	for _, ops := range []string{"write", "sync", "read"} {
		leader, _, _ := r.partition(p)
		n := r.c.Node(leader)
		if ops == "read" {
			r.pickClosedBatch(n, p, 1, 0) // the scrubber has a closed segment to read
		}
		offline := len(n.LogLines(logOffline))
		fault := r.h.BeginFault(fmt.Sprintf("EIO on %s of p%d on node %d", ops, p, n.ID))
		injected := time.Now()
		if err := n.InjectDiskFault(DiskFault{Ops: ops, Path: fmt.Sprintf("%s-%d/", r.topic, p), Err: "EIO"}); err != nil {
			t.Fatal(err)
		}
		r.checkOffline(n, p, ops, offline)
		var moved time.Time
		if err := waitFor(moveLimit, func() bool {
			if l, _, _ := r.partition(p); l != n.ID && moved.IsZero() {
				moved = time.Now()
			}
			return !moved.IsZero() && r.ackedOn(p, moved)
		}); err != nil {
			t.Errorf("EIO on %s: p%d took no write through another leader within %v: %v", ops, p, moveLimit, err)
		} else {
			t.Logf("EIO on %s: p%d acknowledging again through another leader %.1fs after the fault", ops, p, time.Since(injected).Seconds())
		}
		if fired, err := n.DiskFaultsFired(); err != nil || fired == 0 {
			t.Errorf("EIO on %s: no injected fault fired on node %d (%d, %v): the scenario tested nothing", ops, n.ID, fired, err)
		}
		// The disk is "replaced": faults cleared, and the node restarted, since a partition a
		// storage failure took offline stays offline until restart.
		r.h.HealStarting(fault)
		if err := n.ClearDiskFaults(); err != nil {
			t.Error(err)
		}
		n.Kill()
		if err := n.Start(restartLimit); err != nil {
			t.Fatalf("restart after the disk failure: %v", err)
		}
		r.h.HealFault(fault)
		restarted := time.Now()
		if err := waitFor(repairLimit, r.fullISR); err != nil {
			t.Errorf("EIO on %s: node %d did not rejoin every ISR after its restart: %v", ops, n.ID, err)
		} else {
			r.noteWait(time.Since(restarted))
		}
		// Every partition writable again before the next fault, so that each outage is
		// charged to its own fault.
		if err := waitFor(moveLimit, func() bool { return r.w.AckedSince(restarted) }); err != nil {
			t.Errorf("EIO on %s: not every partition took a write after node %d's restart: %v", ops, n.ID, err)
		}
	}
	r.finish()
}

// checkOffline waits (bounded) for node n to log that it took partition p offline after a
// storage failure, naming the injected error, and to show it in strand_log_offline.
func (r *integrity) checkOffline(n *Node, p int32, ops string, before int) {
	t := r.t
	var line string
	err := waitFor(moveLimit, func() bool {
		lines := n.LogLines(logOffline)
		if len(lines) > before {
			line = lines[len(lines)-1]
		}
		return line != ""
	})
	switch {
	case err != nil:
		t.Errorf("EIO on %s: node %d never logged %q: %v", ops, n.ID, logOffline, err)
	case !strings.Contains(line, "injected") || !strings.Contains(line, r.topic):
		t.Errorf("EIO on %s: node %d's offline line does not name the partition and the error: %s", ops, n.ID, line)
	default:
		t.Logf("EIO on %s: node %d says: %s", ops, n.ID, line)
	}
	labels := []string{`topic="` + r.topic + `"`, fmt.Sprintf(`partition="%d"`, p)}
	if err := waitFor(10*time.Second, func() bool {
		v, err := n.Metric("strand_log_offline", labels...)
		return err == nil && v == 1
	}); err != nil {
		t.Errorf("EIO on %s: node %d's strand_log_offline%v never became 1: %v", ops, n.ID, labels, err)
	}
}
