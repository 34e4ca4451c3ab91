package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/strand-data/strand/test/harness"
)

// TestBenchCLI runs the three workloads through the binary against a real strand process,
// with flags from the command line and the environment, and reads the JSON results.
func TestBenchCLI(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	env := []string{"STRAND_BROKERS=" + node.KafkaAddr, "STRAND_RECORD_SIZE=200"}
	run := func(args ...string) map[string]any {
		t.Helper()
		out, errOut, err := strand(t, env, "", append([]string{"bench"}, args...)...)
		if err != nil {
			t.Fatalf("strand bench %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("bench %s output is not JSON: %v\n%s", args[0], err, out)
		}
		return res
	}
	common := []string{"--topic", "cli-bench", "--format", "json", "--quiet"}
	p := run(append([]string{"produce", "--records", "2000", "--partitions", "4", "--linger", "1ms"}, common...)...)
	if p["acked"] != 2000.0 || p["errors"] != 0.0 || p["partitions"] != 4.0 || p["bytes"] != 2000.0*200 {
		t.Fatalf("produce result %v", p)
	}
	c := run(append([]string{"consume", "--records", "2000", "--consumers", "2"}, common...)...)
	if c["records"] != 2000.0 || c["bytes"] != 2000.0*200 {
		t.Fatalf("consume result %v", c)
	}
	e := run(append([]string{"e2e", "--records", "1000", "--rate", "4000", "--linger", "0s"}, common...)...)
	lat, _ := e["latency"].(map[string]any)
	if e["records"] != 1000.0 || lat["count"] != 1000.0 {
		t.Fatalf("e2e result %v", e)
	}
	if _, _, err := strand(t, env, "", "bench", "produce", "--acks", "2", "--records", "1"); err == nil {
		t.Fatal("bench accepted --acks 2")
	}
}

// TestServeProfiler: --pprof-addr serves Go's profiler on its own listener; the public
// HTTP listener does not.
func TestServeProfiler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	node := harness.Start(t, harness.Options{Args: []string{"--pprof-addr", addr}})
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://" + addr + "/debug/pprof/heap"); code != http.StatusOK {
		t.Fatalf("profiler answered %d", code)
	}
	if code := get("http://" + node.HTTPAddr + "/debug/pprof/heap"); code == http.StatusOK {
		t.Fatal("the public HTTP listener serves the profiler")
	}
}
