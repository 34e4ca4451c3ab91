package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// Options configure a cluster.
type Options struct {
	Nodes         int              // 1, 3 or 5
	Netns         bool             // each node in a network namespace of its own (needs root)
	Fsync         string           // "" means always
	BrokerConfigs []string         // name=value, passed to every node as --broker-config
	DataDirs      map[int]string   // per node index: a data dir to use instead of a fresh one
	ReadyTimeout  time.Duration    // "" means 60s
	Args          []string         // extra `strand serve` flags for every node
	NodeArgs      map[int][]string // per node index: extra flags for that node only
}

// Cluster is N `strand serve` processes forming one cluster, every node a metadata voter.
type Cluster struct {
	t     testing.TB
	opts  Options
	Nodes []*Node
	Net   *Network // nil unless Options.Netns
	quiet bool     // no logs printed at a failed test's end
}

// Node is one member of the cluster. Its addresses and data dir stay the same across
// restarts.
type Node struct {
	ID                                  int32
	Index                               int
	KafkaAddr, HTTPAddr, ControllerAddr string
	DataDir                             string

	c       *Cluster
	ns      string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// strandBinary is the strand binary under test: $STRAND_FAULTS_BIN if set (a build made
// elsewhere, e.g. of a branch not yet merged), else ./cmd/strand built once.
func strandBinary(t testing.TB) string {
	if bin := os.Getenv("STRAND_FAULTS_BIN"); bin != "" {
		return bin
	}
	return harness.Binary(t)
}

// freeAddr picks a free loopback port below the kernel's ephemeral range, so that while
// a node is down no outgoing connection (another node dialing, a client) can be given its
// port as a source port and keep it from binding again on restart.
func freeAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low > 12000 {
		for range 100 {
			port := 10000 + mathrand.IntN(low-10000)
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				ln.Close()
				return ln.Addr().String()
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start starts the cluster and waits until every node answers /readyz with 200. Every
// process, namespace and mount it makes is removed when the test ends, and each node's log
// is printed if the test failed.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Launch(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Launch is Start returning an error instead of failing the test; the cluster it returns,
// even with an error, is cleaned up when the test ends or by Close.
func Launch(t testing.TB, opts Options) (*Cluster, error) {
	t.Helper()
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Fsync == "" {
		opts.Fsync = "always"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	strandBinary(t)
	c := &Cluster{t: t, opts: opts}
	if opts.Netns {
		c.Net = NewNetwork(t, opts.Nodes)
	}
	logDir := t.TempDir()
	for i := 0; i < opts.Nodes; i++ {
		n := &Node{ID: int32(i + 1), Index: i, c: c, logPath: filepath.Join(logDir, fmt.Sprintf("node%d.log", i+1))}
		if c.Net != nil {
			ip := c.Net.IP(i)
			n.KafkaAddr, n.HTTPAddr, n.ControllerAddr = ip+":9092", ip+":8080", ip+":9093"
			n.ns = c.Net.Namespace(i)
		} else {
			n.KafkaAddr, n.HTTPAddr, n.ControllerAddr = freeAddr(t), freeAddr(t), freeAddr(t)
		}
		n.DataDir = opts.DataDirs[i]
		if n.DataDir == "" {
			n.DataDir = t.TempDir()
		}
		c.Nodes = append(c.Nodes, n)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() && !c.quiet {
			c.DumpLogs(300)
		}
	})
	for _, n := range c.Nodes {
		if err := n.spawn(); err != nil {
			return c, fmt.Errorf("start node %d: %w", n.ID, err)
		}
	}
	if err := c.WaitReady(opts.ReadyTimeout); err != nil {
		return c, fmt.Errorf("cluster of %d did not become ready: %w", opts.Nodes, err)
	}
	return c, nil
}

// Close kills every node; a closed cluster's logs are not printed when the test fails.
func (c *Cluster) Close() {
	c.quiet = true
	for _, n := range c.Nodes {
		n.Kill()
	}
}

func (c *Cluster) voters() string {
	var vs []string
	for _, n := range c.Nodes {
		vs = append(vs, fmt.Sprintf("%d@%s", n.ID, n.ControllerAddr))
	}
	return strings.Join(vs, ",")
}

// spawn starts the process without waiting for readiness.
func (n *Node) spawn() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("node %d is already running", n.ID)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== harness: starting node %d at %s\n", n.ID, time.Now().Format("15:04:05.000"))
	args := []string{"serve", "--node-id", strconv.Itoa(int(n.ID)), "--data-dir", n.DataDir,
		"--kafka-addr", n.KafkaAddr, "--advertised-kafka-addr", n.KafkaAddr, "--http-addr", n.HTTPAddr,
		"--controller-addr", n.ControllerAddr, "--controller-voters", n.c.voters(), "--fsync", n.c.opts.Fsync}
	for _, kv := range n.c.opts.BrokerConfigs {
		args = append(args, "--broker-config", kv)
	}
	args = append(append(args, n.c.opts.Args...), n.c.opts.NodeArgs[n.Index]...)
	bin := strandBinary(n.c.t)
	var cmd *exec.Cmd
	if n.ns != "" {
		// ip netns exec enters the namespace and execs strand in place: the pid is strand's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	n.cmd, n.done, n.paused = cmd, done, false
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== harness: node %d exited at %s: %v\n", n.ID, time.Now().Format("15:04:05.000"), err)
		logf.Close()
		close(done)
	}()
	return nil
}

// Running says whether the node's process is running (paused counts as running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Ready says whether /readyz answers 200 now.
func (n *Node) Ready() bool {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + n.HTTPAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz until it answers 200, the process exits, or limit passes.
func (n *Node) WaitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !n.Running() {
			return fmt.Errorf("node %d is not running", n.ID)
		}
		if n.Ready() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("node %d not ready after %v", n.ID, limit)
}

// WaitReady waits until every running node is ready.
func (c *Cluster) WaitReady(limit time.Duration) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.WaitReady(limit)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Kill sends SIGKILL and waits for the process to go.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop sends SIGTERM (a controlled shutdown) and waits up to limit for the process to exit
// by itself; it returns an error if it had to be killed or exited non-zero.
func (n *Node) Stop(limit time.Duration) error {
	n.mu.Lock()
	cmd, done, paused := n.cmd, n.done, n.paused
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if paused {
		n.Resume()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(limit):
		n.Kill()
		return fmt.Errorf("node %d did not exit within %v of SIGTERM; killed", n.ID, limit)
	}
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("node %d exited with %d after SIGTERM", n.ID, code)
	}
	return nil
}

// Start runs a stopped or killed node again on the same addresses and data dir and waits
// until it is ready.
func (n *Node) Start(limit time.Duration) error {
	if err := n.spawn(); err != nil {
		return err
	}
	return n.WaitReady(limit)
}

// Pause stops the process with SIGSTOP: it holds its sockets but answers nothing. It returns
// once every thread of the process is stopped: the signal is delivered asynchronously, and a
// thread already running could otherwise still answer a request.
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP, true); err != nil {
		return err
	}
	n.mu.Lock()
	pid := n.cmd.Process.Pid
	n.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for !allThreadsStopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d: not every thread stopped 5s after SIGSTOP", n.ID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// allThreadsStopped reads /proc/PID/task/*/stat: a stopped thread's state is T.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() error { return n.signal(syscall.SIGCONT, false) }

func (n *Node) signal(sig syscall.Signal, paused bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("node %d is not running", n.ID)
	}
	n.paused = paused
	return n.cmd.Process.Signal(sig)
}

// Node finds a node by broker id.
func (c *Cluster) Node(id int32) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Seeds are the Kafka addresses of every node.
func (c *Cluster) Seeds() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.KafkaAddr)
	}
	return out
}

// Client is a franz-go client seeded with every node, closed at cleanup.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(2 * time.Second), kgo.DialTimeout(2 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// DumpLogs prints the last lines of every node's log.
func (c *Cluster) DumpLogs(lines int) {
	for _, n := range c.Nodes {
		c.t.Logf("---- node %d log (%s), last %d lines:\n%s", n.ID, n.logPath, lines, tail(n.logPath, lines))
	}
}

// SaveLogs copies every node's log into dir (for a look after the test).
func (c *Cluster) SaveLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.logPath)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.log", n.ID)), b, 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LogLines returns the lines of the node's log that contain any of the words.
func (n *Node) LogLines(words ...string) []string {
	f, err := os.Open(n.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		for _, w := range words {
			if strings.Contains(sc.Text(), w) {
				out = append(out, sc.Text())
				break
			}
		}
	}
	return out
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// CreateTopic creates the workload topic, retrying while the cluster settles (brokers
// still registering), bounded by ctx.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32, rf int16, configs map[string]*string) error {
	adm, done, err := c.admin()
	if err != nil {
		return err
	}
	defer done()
	var last error
	for ctx.Err() == nil {
		resp, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		if errors.Is(err, kerr.InvalidTopicException) || errors.Is(err, kerr.InvalidConfig) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("create topic %s: %v (%w)", topic, last, ctx.Err())
}

// admin is a kadm client over a short-lived client; call close when done.
func (c *Cluster) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), kgo.DialTimeout(2*time.Second),
		kgo.RequestTimeoutOverhead(3*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// Partitions describes each partition of topic (leader, replicas, ISR) as the metadata
// says.
func (c *Cluster) Partitions(ctx context.Context, topic string) (map[int32]kadm.PartitionDetail, error) {
	adm, done, err := c.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("topic %s not in metadata", topic)
	}
	if td.Err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, td.Err)
	}
	return td.Partitions, nil
}

// FullISR says whether every one of the topic's partitions has all its replicas in sync,
// as the metadata says now.
func (c *Cluster) FullISR(topic string, partitions int32) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	parts, err := c.Partitions(ctx, topic)
	if err != nil || len(parts) != int(partitions) {
		return false
	}
	for _, p := range parts {
		if len(p.ISR) != len(p.Replicas) {
			return false
		}
	}
	return true
}

// Controller is the broker id the metadata names as controller.
func (c *Cluster) Controller(ctx context.Context) (int32, error) {
	adm, done, err := c.admin()
	if err != nil {
		return -1, err
	}
	defer done()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return -1, err
	}
	return md.Controller, nil
}
