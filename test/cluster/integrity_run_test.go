package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	strandcluster "github.com/strand-data/strand/internal/cluster"
)

// The integrity scenarios (issue 8) damage what a node has on disk, or make its disk lie or
// fail, under an acks=all load, and then hold the cluster to: no acknowledged write lost,
// replicas byte-identical below the high watermark (batches compared and checksummed on every
// node), `strand debug verify` clean on every data dir after a controlled stop. Each prints a
// row of IntegrityHeader.

// IntegrityHeader heads the rows of the integrity scenarios.
const IntegrityHeader = "integrity scenario                   |   acked | lost | dups | div. | damage found | repairs | offline | repair or rejoin max | unavail max"

var (
	integrityMu      sync.Mutex
	integritySummary []string
)

// integrity is one integrity scenario in progress.
type integrity struct {
	t          *testing.T
	name       string
	c          *Cluster
	w          *Workload
	h          *History
	topic      string
	partitions int32
	repairMax  time.Duration // the longest wait for a repair or a rejoin
}

// integrityOptions shape an integrity scenario's cluster and topic.
type integrityOptions struct {
	Nodes        int
	RF           int16
	Partitions   int32
	SegmentBytes int // small, so that there are closed segments to damage
	Netns        bool
	Args         []string
	NodeArgs     map[int][]string
}

// startIntegrity starts the cluster, the topic (min.insync.replicas 2) and the load, and
// returns once every partition has acknowledged a write; it skips where the environment
// cannot run the scenario.
func startIntegrity(t *testing.T, name string, o integrityOptions) *integrity {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster of strand processes")
	}
	if o.Netns {
		if err := NetnsSupport(); err != nil {
			t.Skipf("needs network namespaces: %v", err)
		}
	}
	if err := clusterForms(t); err != nil {
		t.Fatalf("three voters did not form a ready cluster (probe): %v", firstLine(err.Error()))
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 32 << 10
	}
	r := &integrity{t: t, name: name, topic: topicName("integrity " + name), partitions: o.Partitions, h: &History{}}
	r.c = Start(t, Options{Nodes: o.Nodes, Netns: o.Netns, BrokerConfigs: integrityBrokerConfigs(), Args: o.Args, NodeArgs: o.NodeArgs})
	if dir := os.Getenv("STRAND_FAULTS_OUT"); dir != "" {
		t.Cleanup(func() { r.c.SaveLogs(filepath.Join(dir, r.topic)) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	minISR, segment := "2", fmt.Sprint(o.SegmentBytes)
	configs := map[string]*string{"min.insync.replicas": &minISR, "segment.bytes": &segment}
	if err := r.c.CreateTopic(ctx, r.topic, o.Partitions, o.RF, configs); err != nil {
		t.Fatal(err)
	}
	r.w = StartWorkload(t, r.c, r.topic, o.Partitions, WorkloadOptions{History: r.h})
	if err := waitFor(30*time.Second, func() bool { return r.w.AckedSince(time.Time{}) }); err != nil {
		t.Fatalf("workload never got a write acknowledged on every partition: %v", err)
	}
	return r
}

// integrityBrokerConfigs adds to the suite's configs a recovery point written every half
// second, so that damage below it (a cut file) is known as lost acknowledged data rather
// than taken for an unclean tail (if this build knows the config).
func integrityBrokerConfigs() []string {
	out := knownBrokerConfigs()
	const checkpoint = "log.flush.offset.checkpoint.interval.ms"
	if _, ok := strandcluster.BrokerConfigDef(checkpoint); ok {
		out = append(out, checkpoint+"=500")
	}
	return out
}

// logEndsReach says whether node n's log of every partition ends at or past ends[p].
func (r *integrity) logEndsReach(n *Node, ends map[int32]int64) bool {
	for p, end := range ends {
		v, err := n.Metric("strand_log_end_offset", `topic="`+r.topic+`"`, fmt.Sprintf(`partition="%d"`, p))
		if err != nil || int64(v) < end {
			return false
		}
	}
	return true
}

// highWatermarks are the partitions' high watermarks as their leaders report them now.
func (r *integrity) highWatermarks() map[int32]int64 {
	out := map[int32]int64{}
	for p := int32(0); p < r.partitions; p++ {
		leader, _, _ := r.partition(p)
		v, err := r.c.Node(leader).Metric("strand_high_watermark", `topic="`+r.topic+`"`, fmt.Sprintf(`partition="%d"`, p))
		if err != nil {
			r.t.Fatalf("high watermark of p%d from node %d: %v", p, leader, err)
		}
		out[p] = int64(v)
	}
	return out
}

// partition is what the metadata says of one partition of the scenario's topic, waiting
// (bounded) until it names a leader.
func (r *integrity) partition(p int32) (leader int32, replicas, isr []int32) {
	r.t.Helper()
	err := waitFor(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		parts, err := r.c.Partitions(ctx, r.topic)
		if err != nil || parts[p].Leader < 0 || r.c.Node(parts[p].Leader) == nil {
			return false
		}
		leader, replicas, isr = parts[p].Leader, parts[p].Replicas, parts[p].ISR
		return true
	})
	if err != nil {
		r.t.Fatalf("partition %d has no leader: %v", p, err)
	}
	return leader, replicas, isr
}

// fullISR says whether every partition has every replica in sync.
func (r *integrity) fullISR() bool { return r.c.FullISR(r.topic, r.partitions) }

// ackedOn says whether partition p acknowledged a write begun at or after since.
func (r *integrity) ackedOn(p int32, since time.Time) bool {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	for i := len(r.h.Produces) - 1; i >= 0; i-- {
		pr := r.h.Produces[i]
		if pr.Acked() && pr.Partition == p && !pr.Start.Before(since) {
			return true
		}
	}
	return false
}

// noteWait records a repair or rejoin time for the row.
func (r *integrity) noteWait(d time.Duration) { r.repairMax = max(r.repairMax, d) }

// logCount counts the lines of every node's log that contain what.
func (r *integrity) logCount(what string) int {
	n := 0
	for _, node := range r.c.Nodes {
		n += len(node.LogLines(what))
	}
	return n
}

// Log lines of the broker the row counts (internal/broker scrub.go and repair.go).
const (
	logDamageFound = "damaged batch on disk"
	logLostOnOpen  = "the log ends below its recovery point"
	logRepaired    = "damaged replica truncated to its last good batch"
	logOffline     = "partition offline on this node after a storage failure"
)

// finish stops the load, reads everything back, waits for full ISRs, compares the replicas
// on disk, stops every node with SIGTERM, verifies every data dir, runs the checks and
// prints the row.
func (r *integrity) finish() {
	t := r.t
	t.Helper()
	r.w.Stop(30 * time.Second)
	if err := r.c.WaitReady(60 * time.Second); err != nil {
		t.Errorf("before the final read: %v", err)
	}
	if err := r.w.FinalRead(t, 60*time.Second); err != nil {
		t.Errorf("final read: %v", err)
	}
	isrStart := time.Now()
	if err := waitFor(60*time.Second, r.fullISR); err != nil {
		t.Errorf("with every node up and the load stopped, some partition's ISR stayed short of its replicas: %v", err)
	} else {
		t.Logf("every ISR full %.1fs after the final read", time.Since(isrStart).Seconds())
	}
	r.compareReplicas()
	found, repaired, offline := r.logCount(logDamageFound)+r.logCount(logLostOnOpen), r.logCount(logRepaired), r.logCount(logOffline)
	for _, n := range r.c.Nodes {
		if err := n.Stop(30 * time.Second); err != nil {
			t.Errorf("controlled shutdown: %v", err)
		}
	}
	for _, n := range r.c.Nodes {
		damaged, out, err := Verify(t, n.DataDir)
		switch {
		case err != nil:
			t.Error(err)
		case damaged:
			t.Errorf("strand debug verify found damage on node %d after repair and a controlled stop:\n%s", n.ID, out)
		}
	}
	rep := Check(r.name, r.h)
	_, unavail := rep.OutageStats()
	row := fmt.Sprintf("%-36s | %7d | %4d | %4d | %4d | %12d | %7d | %7d | %19.1fs | %10.2fs",
		r.name, rep.Acked, len(rep.Lost), len(rep.Duplicates), len(rep.Divergent), found, repaired, offline, r.repairMax.Seconds(), unavail)
	t.Log(IntegrityHeader)
	t.Log(row)
	integrityMu.Lock()
	integritySummary = append(integritySummary, row)
	integrityMu.Unlock()
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	if lost, ok := firstLost(r.h); ok {
		t.Logf("first lost write %s, acknowledged at %s as p%d@%d", lost.Value(), lost.End.Format("15:04:05.000"), lost.Partition, lost.Offset)
	}
}

// compareReplicas holds every replica of every partition to the same batches below the
// final read's end: batch by batch (Divergence) and by a checksum of the bytes, which must
// also cover the whole range on every replica.
func (r *integrity) compareReplicas() {
	t := r.t
	dirs := map[int32]string{}
	for _, n := range r.c.Nodes {
		dirs[n.ID] = n.DataDir
	}
	div, compared, err := Divergence(dirs, r.topic, r.h.FinalEnds)
	if err != nil {
		t.Errorf("reading replicas' logs: %v", err)
	}
	if compared == 0 {
		t.Errorf("the replica comparison found no batches to compare under %v", dirs)
	}
	var lines []string
	for p, end := range r.h.FinalEnds {
		sums := map[string][]int32{}
		for _, n := range r.c.Nodes {
			dir := PartitionDir(n.DataDir, r.topic, p)
			if _, err := os.Stat(dir); err != nil {
				continue // not a replica of this partition
			}
			sum, batches, next, err := BatchesChecksum(dir, end)
			if err != nil {
				t.Errorf("checksum of node %d's p%d: %v", n.ID, p, err)
				continue
			}
			if next != end {
				div = append(div, Anomaly{p, next, fmt.Sprintf("node %d holds batches only up to %d of the high watermark %d", n.ID, next, end)})
			}
			sums[sum] = append(sums[sum], n.ID)
			lines = append(lines, fmt.Sprintf("p%d node %d: %d batches below %d, sha256 %s", p, n.ID, batches, end, sum[:16]))
		}
		if len(sums) > 1 {
			div = append(div, Anomaly{p, 0, fmt.Sprintf("replicas' checksums below %d differ: %v", end, sums)})
		}
	}
	slices.Sort(lines)
	t.Logf("replicas' batches on disk (%d pairs compared batch by batch):\n%s", compared, strings.Join(lines, "\n"))
	sortAnomalies(div)
	r.h.Divergence = div
}

// waitRepaired waits (bounded) until `strand debug verify` finds no damage in the node's
// data dir and every ISR is full again, and returns how long that took.
func (r *integrity) waitRepaired(n *Node, since time.Time, limit time.Duration) (time.Duration, error) {
	var last string
	err := waitFor(limit, func() bool {
		damaged, out, err := Verify(r.t, n.DataDir)
		if err != nil || damaged {
			last = out
			time.Sleep(500 * time.Millisecond) // each poll starts a process
			return false
		}
		return r.fullISR()
	})
	took := time.Since(since)
	if err != nil {
		return took, fmt.Errorf("node %d not repaired (verify clean and every ISR full) within %v; last verify report:\n%s", n.ID, limit, last)
	}
	r.noteWait(took)
	return took, nil
}
