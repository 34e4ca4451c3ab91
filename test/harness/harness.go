// Package harness starts real `strand serve` processes for black-box tests: on 127.0.0.1
// ports it picks, polled until /readyz answers, and killed when the test ends.
package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/strand once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "strand-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "strand")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/strand")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Run runs a package's tests (call it from TestMain) and then removes the binary Binary
// built, which lives in a temporary directory of its own.
func Run(m *testing.M) int {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// Options configure a node.
type Options struct {
	DataDir string   // "" means a fresh t.TempDir()
	Args    []string // extra serve flags
	Env     []string
	// HTTPSCAFile, for a node serving TLS, is the CA that signed its certificate: readiness
	// is then polled over HTTPS.
	HTTPSCAFile string
}

// Node is a running strand process.
type Node struct {
	KafkaAddr, HTTPAddr, DataDir string

	opts    Options
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// freeAddr asks the kernel for a free loopback port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs `strand serve` and waits until it is ready; the test's cleanup kills it.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	n := &Node{KafkaAddr: freeAddr(t), HTTPAddr: freeAddr(t), DataDir: opts.DataDir, opts: opts,
		logPath: filepath.Join(t.TempDir(), "strand.log")}
	n.start(t)
	t.Cleanup(func() {
		n.Kill(t)
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("strand log:\n%s", b)
			}
		}
	})
	return n
}

func (n *Node) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data-dir", n.DataDir, "--kafka-addr", n.KafkaAddr, "--http-addr", n.HTTPAddr}, n.opts.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), n.opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	if err := n.waitReady(30 * time.Second); err != nil {
		n.Kill(t)
		b, _ := os.ReadFile(n.logPath)
		t.Fatalf("strand did not become ready: %v\n%s", err, b)
	}
}

func (n *Node) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	scheme := "http://"
	if n.opts.HTTPSCAFile != "" {
		pem, err := os.ReadFile(n.opts.HTTPSCAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		scheme = "https://"
	}
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("process exited: %v", n.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(scheme + n.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", limit)
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.Kill(t)
		t.Fatal("strand did not stop within 30s of SIGTERM")
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("strand exited with %d after SIGTERM", code)
	}
	n.cmd = nil
}

// Kill sends SIGKILL and waits.
func (n *Node) Kill(t testing.TB) {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}

// Restart stops the node gracefully if it runs (call Kill first for a crash) and starts it
// again on the same data dir and ports.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Stop(t)
	n.start(t)
}

// PID is the running process's id, 0 when it is not running.
func (n *Node) PID() int {
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Client is a franz-go client seeded with the node, closed at cleanup.
func (n *Node) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Context is a context bounded for one test step.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
