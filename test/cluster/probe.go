package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What the harness asks a node from the outside: `strand debug verify` over its data dir,
// its Prometheus metrics, and (for a node started with --unsafe-disk-faults) its disk faults.

// Verify runs `strand debug verify --data-dir` on a data dir; damaged is its exit status 1,
// out its report. Any other failure to run it is err.
func Verify(t testing.TB, dataDir string) (damaged bool, out string, err error) {
	cmd := exec.Command(strandBinary(t), "debug", "verify", "--data-dir", dataDir)
	b, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return true, string(b), nil
	}
	if err != nil {
		return false, string(b), fmt.Errorf("strand debug verify --data-dir %s: %w: %s", dataDir, err, b)
	}
	return false, string(b), nil
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// Metric sums the samples of a metric whose labels include every name="value" of labels
// (e.g. `topic="t"`, `partition="0"`), from the node's /metrics.
func (n *Node) Metric(name string, labels ...string) (float64, error) {
	resp, err := httpClient.Get("http://" + n.HTTPAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		matches := true
		for _, l := range labels {
			matches = matches && strings.Contains(line, l)
		}
		if !matches {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// DiskFault is a rule for POST /v1/internal/disk-faults (see serve's --unsafe-disk-faults).
type DiskFault struct {
	Ops   string `json:"ops"`
	Path  string `json:"path"`
	Kind  string `json:"kind,omitempty"`
	After int    `json:"after,omitempty"`
	Times int    `json:"times,omitempty"`
	Err   string `json:"err,omitempty"`
}

// InjectDiskFault adds a rule to the node's faulty file system.
func (n *Node) InjectDiskFault(f DiskFault) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return n.diskFaults(http.MethodPost, bytes.NewReader(body), nil)
}

// ClearDiskFaults removes every rule.
func (n *Node) ClearDiskFaults() error { return n.diskFaults(http.MethodDelete, nil, nil) }

// DiskFaultsFired is how many injected faults have fired on the node since it started.
func (n *Node) DiskFaultsFired() (int, error) {
	var out struct{ Fired int }
	err := n.diskFaults(http.MethodGet, nil, &out)
	return out.Fired, err
}

func (n *Node) diskFaults(method string, body io.Reader, into any) error {
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr+"/v1/internal/disk-faults", body)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("node %d disk faults: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("node %d %s disk faults: %s: %s (was it started with --unsafe-disk-faults?)", n.ID, method, resp.Status, b)
	}
	if into != nil {
		return json.NewDecoder(resp.Body).Decode(into)
	}
	return nil
}
