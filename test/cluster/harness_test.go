package cluster

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests check the harness's own fault tools on a single node, so that a scenario's
// clean result cannot come from a fault that was never injected.

func TestHarnessSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a strand process")
	}
	c := Start(t, Options{Nodes: 1})
	n := c.Nodes[0]
	if err := n.Pause(); err != nil {
		t.Fatal(err)
	}
	if n.Ready() {
		t.Fatal("a SIGSTOPped node answered /readyz")
	}
	if err := n.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(10 * time.Second); err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	if err := n.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if n.Running() || n.Ready() {
		t.Fatal("node still up after Stop")
	}
	if err := n.Start(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	n.Kill()
	if n.Running() {
		t.Fatal("node still running after Kill")
	}
	if err := n.Start(30 * time.Second); err != nil {
		t.Fatalf("start after kill -9: %v", err)
	}
}

func TestHarnessNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a strand process")
	}
	if err := NetnsSupport(); err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
	c := Start(t, Options{Nodes: 1, Netns: true})
	n := c.Nodes[0]
	if err := c.CreateTopic(context.Background(), "net", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	produce := func(size int, limit time.Duration) (time.Duration, error) {
		cl := c.Client(t, kgo.DefaultProduceTopic("net"), kgo.RecordDeliveryTimeout(limit), kgo.ProducerBatchMaxBytes(16<<10),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		start := time.Now()
		errs := make(chan error, size/(8<<10))
		for i := 0; i < size/(8<<10); i++ {
			value := make([]byte, 8<<10)
			rand.Read(value)
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) { errs <- err })
		}
		err := cl.Flush(ctx)
		took := time.Since(start)
		for i := 0; i < size/(8<<10) && err == nil; i++ {
			err = <-errs
		}
		return took, err
	}
	fast, err := produce(128<<10, 10*time.Second)
	if err != nil {
		t.Fatalf("produce over the bridge: %v", err)
	}

	if err := c.Net.Cut(0); err != nil {
		t.Fatal(err)
	}
	if n.Ready() {
		t.Fatal("a cut-off node answered /readyz")
	}
	if _, err := produce(8<<10, 2*time.Second); err == nil {
		t.Fatal("produced to a cut-off node")
	}
	if err := c.Net.Heal(0); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(10 * time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	if err := c.Net.Slow(0, "256kbit"); err != nil {
		t.Fatal(err)
	}
	slow, err := produce(128<<10, 30*time.Second)
	if err != nil {
		t.Fatalf("produce over a slow link: %v", err)
	}
	if err := c.Net.Unslow(0); err != nil {
		t.Fatal(err)
	}
	t.Logf("128KiB: %v at full speed, %v at 256kbit", fast, slow)
	if slow < 2*time.Second || slow < 4*fast {
		t.Fatalf("the slow link did not slow 128KiB down: %v vs %v", slow, fast)
	}
}

func TestHarnessFillDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	if err := TmpfsSupport(t); err != nil {
		t.Skipf("needs a tmpfs mount: %v", err)
	}
	dir := MountTmpfs(t, "8m")
	filler, err := FillDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	if free, _ := FreeBytes(dir); free > 64<<10 {
		t.Fatalf("%d bytes still free after FillDisk", free)
	}
	if err := os.WriteFile(dir+"/more", make([]byte, 1<<20), 0o644); err == nil {
		t.Fatal("wrote 1MiB to a full disk")
	}
	os.Remove(filler)
	if free, _ := FreeBytes(dir); free < 7<<20 {
		t.Fatalf("only %d bytes free after removing the filler", free)
	}
}
