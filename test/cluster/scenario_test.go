package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/strand-data/strand/test/harness"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	strandcluster "github.com/strand-data/strand/internal/cluster"
)

// long is the long form: more repetitions, longer faults, 5-node variants.
var long = os.Getenv("STRAND_FAULTS_LONG") != ""

var (
	summaryMu sync.Mutex
	summary   []string
)

func TestMain(m *testing.M) {
	code := harness.Run(m)
	var out strings.Builder
	if len(summary) > 0 {
		fmt.Fprintf(&out, "\nfault scenarios (acked = acknowledged writes; lost, dups, order, reuse, stale, div(ergent replicas) must be 0)\n%s\n%s\n%s\n\n",
			TableHeader, strings.Repeat("-", len(TableHeader)), strings.Join(summary, "\n"))
	}
	if len(integritySummary) > 0 {
		fmt.Fprintf(&out, "\nintegrity scenarios (lost and div(ergent replicas) must be 0)\n%s\n%s\n%s\n\n",
			IntegrityHeader, strings.Repeat("-", len(IntegrityHeader)), strings.Join(integritySummary, "\n"))
	}
	if len(txnSummary) > 0 {
		fmt.Fprintf(&out, "\ntransactional scenarios (lost, dups, aborted reads, partial, order, late, indet., chain must be 0)\n%s\n%s\n%s\n\n",
			TxnTableHeader, strings.Repeat("-", len(TxnTableHeader)), strings.Join(txnSummary, "\n"))
	}
	fmt.Print(out.String())
	// go test shows a passing package's output only with -v; STRAND_FIGURES names a file
	// that collects the tables for CI to print.
	if name := os.Getenv("STRAND_FIGURES"); name != "" && out.Len() > 0 {
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.WriteString(out.String())
			f.Close()
		}
	}
	os.Exit(code)
}

// scenario is one fault, injected reps times into a running workload.
type scenario struct {
	name        string
	nodes       int
	rf          int16
	minISR      int
	partitions  int32
	netns       bool // needs network namespaces
	tmpfsNode   int  // index of the node whose data dir is a small tmpfs, or -1
	reps        int  // repetitions (short form; the long form multiplies)
	hold        time.Duration
	belowMinISR bool // the fault leaves fewer than min.insync.replicas up: no write may be acknowledged
	// inject starts the fault in repetition rep, calling begin with the fault's name just
	// before it acts, and returns what heals it.
	inject func(t *testing.T, r *env, rep int, begin func(name string)) (heal func() error)
}

// env is a scenario in progress.
type env struct {
	c     *Cluster
	w     *Workload
	topic string
	dirs  map[int]string
}

// brokerConfigs are the optional static configs that make failure detection quick enough
// for a bounded test, passed only if this build knows them.
var brokerConfigs = []string{
	"broker.heartbeat.interval.ms=200",
	"broker.session.timeout.ms=2000",
	"replica.lag.time.max.ms=3000",
	"replica.fetch.wait.max.ms=100",
}

func knownBrokerConfigs() []string {
	if v, ok := os.LookupEnv("STRAND_FAULTS_BROKER_CONFIGS"); ok {
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' }) // for a STRAND_FAULTS_BIN of another build
	}
	var out []string
	for _, kv := range brokerConfigs {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := strandcluster.BrokerConfigDef(name); ok {
			out = append(out, kv)
		}
	}
	return out
}

var (
	formOnce sync.Once
	formErr  error
)

// clusterForms is the probe run once before the first multi-node scenario: do three
// voters all become ready? Before replication and the control plane landed they could not,
// and the scenarios skipped; now that they have, a cluster that does not form fails every
// multi-node scenario with the probe's reason, once, instead of each timing out alone.
func clusterForms(t *testing.T) error {
	formOnce.Do(func() {
		t.Logf("cluster probe: 3 voters with --broker-config %v", knownBrokerConfigs())
		c, err := Launch(t, Options{Nodes: 3, ReadyTimeout: 60 * time.Second, BrokerConfigs: knownBrokerConfigs()})
		c.Close()
		formErr = err
		if err != nil {
			t.Logf("cluster probe: %v", err)
		}
	})
	return formErr
}

func runScenario(t *testing.T, sc scenario) {
	if testing.Short() {
		t.Skip("starts a cluster of strand processes")
	}
	if sc.netns {
		if err := NetnsSupport(); err != nil {
			t.Skipf("needs network namespaces: %v", err)
		}
	}
	if sc.tmpfsNode >= 0 {
		if err := TmpfsSupport(t); err != nil {
			t.Skipf("needs a tmpfs mount: %v", err)
		}
	}
	if sc.nodes > 1 {
		if err := clusterForms(t); err != nil {
			t.Fatalf("three voters did not form a ready cluster (probe): %v", firstLine(err.Error()))
		}
	}
	reps, hold := sc.reps, sc.hold
	if long {
		reps, hold = reps*3, hold*2
	}
	r := &env{topic: topicName(sc.name), dirs: map[int]string{}}
	if sc.tmpfsNode >= 0 {
		r.dirs[sc.tmpfsNode] = MountTmpfs(t, "64m")
	}
	r.c = Start(t, Options{Nodes: sc.nodes, Netns: sc.netns, DataDirs: r.dirs, BrokerConfigs: knownBrokerConfigs()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &History{}
	views := watchViews(r.c, h, r.topic, 50*time.Millisecond)
	defer views.stop()
	minISR := fmt.Sprint(sc.minISR)
	if err := r.c.CreateTopic(ctx, r.topic, sc.partitions, sc.rf, map[string]*string{"min.insync.replicas": &minISR}); err != nil {
		t.Fatal(err)
	}
	r.w = StartWorkload(t, r.c, r.topic, sc.partitions, WorkloadOptions{History: h})
	if err := waitFor(30*time.Second, func() bool { return r.w.AckedSince(time.Time{}) }); err != nil {
		t.Fatalf("workload never got a write acknowledged on every partition before any fault: %v", err)
	}
	idCtx, cancelIDs := context.WithTimeout(context.Background(), 5*time.Second)
	t.Logf("producer ids: %v", r.w.SampleProducerIDs(idCtx))
	cancelIDs()
	time.Sleep(time.Second) // load before the first fault

	for rep := 0; rep < reps; rep++ {
		fault, name := -1, ""
		heal := sc.inject(t, r, rep, func(n string) {
			fault, name = h.BeginFault(n), n
			if sc.belowMinISR {
				h.MarkBelowMinISR(fault)
			}
			t.Logf("fault %d/%d: %s", rep+1, reps, name)
		})
		if fault < 0 {
			t.Fatalf("scenario %s injected no fault", sc.name)
		}
		time.Sleep(hold)
		h.HealStarting(fault)
		if err := heal(); err != nil {
			t.Errorf("heal %s: %v", name, err)
		}
		h.HealFault(fault)
		healed := time.Now()
		if err := r.c.WaitReady(60 * time.Second); err != nil {
			t.Errorf("after %s: %v", name, err)
		}
		if err := waitFor(60*time.Second, func() bool { return r.w.AckedSince(healed) }); err != nil {
			t.Errorf("after healing %s, not every partition took a write: %v", name, err)
		}
		time.Sleep(time.Second) // load between faults
	}
	idCtx, cancelIDs = context.WithTimeout(context.Background(), 5*time.Second)
	r.w.SampleProducerIDs(idCtx)
	cancelIDs()
	r.w.Stop(30 * time.Second)
	views.stop()
	if err := r.w.FinalRead(t, 60*time.Second); err != nil {
		t.Errorf("final read: %v", err)
	}
	// With every node back and no load, every follower must rejoin the ISR; then the
	// replicas' logs are complete enough below the high watermark to compare.
	isrStart := time.Now()
	if err := waitFor(30*time.Second, func() bool { return fullISR(r) }); err != nil {
		t.Errorf("with every node up and the load stopped, some partition's ISR stayed short of its replicas: %v", err)
	} else {
		t.Logf("every ISR full %.1fs after the final read", time.Since(isrStart).Seconds())
	}
	dirs := map[int32]string{}
	for _, n := range r.c.Nodes {
		dirs[n.ID] = n.DataDir
	}
	if div, compared, err := Divergence(dirs, r.topic, h.FinalEnds); err != nil {
		t.Errorf("reading replicas' logs: %v", err)
	} else {
		h.Divergence = div
		t.Logf("replicas' logs on disk: %d batches compared across replicas, %d divergent", compared, len(div))
		if sc.rf > 1 && compared == 0 {
			t.Errorf("the replica comparison found no batches to compare under %v", dirs)
		}
	}
	rep := Check(sc.name, h)
	if dir := os.Getenv("STRAND_FAULTS_OUT"); dir != "" {
		path := filepath.Join(dir, r.topic+".json")
		if err := writeHistory(path, h); err != nil {
			t.Errorf("write history: %v", err)
		} else {
			t.Logf("history written to %s", path)
		}
	}
	row := rep.Row()
	t.Log(TableHeader)
	t.Log(row)
	summaryMu.Lock()
	summary = append(summary, row)
	summaryMu.Unlock()
	for _, f := range h.Faults {
		t.Logf("%s: %s", f.Name, errorsDuring(h, f.At, f.Healed.Add(5*time.Second)))
	}
	if n := r.w.DataLossEvents(); n > 0 {
		t.Logf("the consumer's client reported data loss (log truncated below its position) %d times", n)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	if lost, ok := firstLost(h); ok {
		t.Logf("first lost write %s, acknowledged at %s as p%d@%d; what each node said about p%d around then:\n%s",
			lost.Value(), lost.End.Format("15:04:05.000"), lost.Partition, lost.Offset, lost.Partition,
			ViewsAround(h, lost.Partition, lost.End, 2*time.Second, 500*time.Millisecond))
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("still false after %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// topicName makes a valid topic name of a scenario's name.
func topicName(scenario string) string {
	b := []byte("faults-")
	for _, c := range []byte(strings.ToLower(scenario)) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case len(b) > 0 && b[len(b)-1] != '-':
			b = append(b, '-')
		}
	}
	return strings.TrimRight(string(b), "-")
}

// errorsDuring summarizes the produce attempts that ended between from and to.
func errorsDuring(h *History, from, to time.Time) string {
	acked, failed := 0, 0
	kinds := map[string]int{}
	for _, p := range h.Produces {
		if p.End.Before(from) || p.End.After(to) {
			continue
		}
		if p.Acked() {
			acked++
			continue
		}
		failed++
		kinds[p.Err]++
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%dx %q", n, k))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d acked, %d failed while it lasted (+5s) %s", acked, failed, strings.Join(parts, ", "))
}

// writeHistory saves a history as JSON for a look after the test (STRAND_FAULTS_OUT).
func writeHistory(path string, h *History) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// firstLost is the earliest acknowledged write the final read did not find.
func firstLost(h *History) (Produce, bool) {
	vals := map[string]bool{}
	for _, r := range h.Final {
		vals[r.Value] = true
	}
	var first Produce
	found := false
	for _, p := range h.Produces {
		if p.Acked() && !vals[p.Value()] && (!found || p.End.Before(first.End)) {
			first, found = p, true
		}
	}
	return first, found
}

// fullISR says whether every partition of the scenario's topic has all its replicas in sync.
func fullISR(r *env) bool { return r.c.FullISR(r.topic, r.w.Partitions) }
