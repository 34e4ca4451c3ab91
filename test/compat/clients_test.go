package compat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/test/harness"
)

// need finds a client program; outside CI a missing client skips the test, in CI it fails.
func need(t *testing.T, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (.ci/run installs it)", path)
	}
	t.Skipf("%s is not installed; run .ci/run or install it to run this test", path)
	return ""
}

// run runs a client command with a bound and returns its stdout; stderr goes to the failure.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestKcat(t *testing.T) {
	kcat := need(t, "kcat")
	node := harness.Start(t, harness.Options{})
	for _, line := range strings.Split(run(t, "", kcat, "-V"), "\n") {
		if strings.HasPrefix(line, "Version") {
			t.Logf("kcat %s", line)
		}
	}
	b := node.KafkaAddr

	// -P with keys: auto-creates the topic, as Kafka does by default.
	var in strings.Builder
	const n = 500
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "key-%d:value-%d\n", i, i)
	}
	before := time.Now().UnixMilli()
	run(t, in.String(), kcat, "-b", b, "-P", "-t", "kc", "-K:", "-p", "0")

	meta := run(t, "", kcat, "-b", b, "-L", "-t", "kc")
	if !strings.Contains(meta, `topic "kc" with 1 partitions`) || !strings.Contains(meta, "1 brokers") {
		t.Fatalf("kcat -L:\n%s", meta)
	}
	out := run(t, "", kcat, "-b", b, "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k|%s|%p|%o\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("kcat consumed %d records, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("key-%d|value-%d|0|%d", i, i, i); l != want {
			t.Fatalf("record %d: %q, want %q", i, l, want)
		}
	}
	// -Q by timestamp: the first record at or after a time before the produce is offset 0;
	// a time after everything finds nothing (-1).
	q := run(t, "", kcat, "-b", b, "-Q", "-t", "kc:0:"+strconv.FormatInt(before-1000, 10))
	if !strings.Contains(q, "kc [0] offset 0") {
		t.Fatalf("kcat -Q before: %q", q)
	}
	q = run(t, "", kcat, "-b", b, "-Q", "-t", "kc:0:"+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))
	if !strings.Contains(q, "kc [0] offset -1") {
		t.Fatalf("kcat -Q after: %q", q)
	}
	t.Logf("kcat: %d records produced with keys and consumed back", n)
}

// needPythonClient skips (outside CI) or fails the test when python cannot import client
// (kafka-python or confluent-kafka).
func needPythonClient(t *testing.T, python, client string) {
	t.Helper()
	check := exec.Command(python, "-c", map[string]string{"kafka-python": "import kafka", "confluent-kafka": "import confluent_kafka"}[client])
	if err := check.Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed for %s", client, python)
		}
		t.Skipf("%s is not installed for %s", client, python)
	}
}

func TestPythonClients(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	for _, client := range []string{"kafka-python", "confluent-kafka"} {
		t.Run(client, func(t *testing.T) {
			needPythonClient(t, python, client)
			node := harness.Start(t, harness.Options{})
			out := run(t, "", python, filepath.Join("testdata", "python_clients.py"), node.KafkaAddr, client, "py-"+client, "2000")
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

func TestKafkaJS(t *testing.T) {
	node := need(t, "node")
	dir := filepath.Join("testdata", "kafkajs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kafkajs is not installed (.ci/run runs npm ci in test/compat/testdata/kafkajs)")
		}
		t.Skip("kafkajs is not installed: run npm ci in test/compat/testdata/kafkajs")
	}
	s := harness.Start(t, harness.Options{})
	out := run(t, "", node, filepath.Join(dir, "client.js"), s.KafkaAddr, "kjs", "3000")
	t.Logf("%s", strings.TrimSpace(out))
}
