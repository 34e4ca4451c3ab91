package journal

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
)

const crashChildEnv = "STRAND_JOURNAL_CRASH_CHILD"

// TestCrashChild is the child side of TestCrashKill: it appends with fsync=always from
// four goroutines and prints "offset value" for every append that returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only runs as TestCrashKill's child")
	}
	cfg := quietConfig()
	cfg.SegmentBytes = 64 << 10 // roll often, so crashes land in rolls too
	cfg.IndexIntervalBytes = 512
	l, err := Open(dir, cfg)
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	cycle := os.Getenv("STRAND_JOURNAL_CRASH_CYCLE")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				value := fmt.Sprintf("c%s-w%d-%d", cycle, w, i)
				recs := []record.Record{{Value: []byte(value)}, {OffsetDelta: 1, Value: []byte(strings.Repeat("x", rand.IntN(2000)))}}
				b, _ := record.Build(record.Header{BaseTimestamp: 1, ProducerID: -1, BaseSequence: -1}, recs, record.CodecNone)
				res, err := l.Append(context.Background(), b, AppendOptions{})
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s\n", res.BaseOffset, value)
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

// TestCrashKill runs a child that appends with fsync=always, kills it with SIGKILL at a
// random moment, reopens the log and checks that every acknowledged append is there at its
// offset and that the log holds nothing but valid batches. STRAND_CRASH_CYCLES sets how
// many times (default 8; the long form uses 50).
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	cycles := 8
	if s := os.Getenv("STRAND_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	acked := map[int64]string{}
	for c := 0; c < cycles; c++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "STRAND_JOURNAL_CRASH_CYCLE="+strconv.Itoa(c))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The kill lands a random moment after the child's first acknowledged append, or
		// after a bound if it never acknowledges one.
		killAfter := time.Duration(rand.IntN(150)) * time.Millisecond
		timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			if n == 0 {
				timer.Reset(killAfter)
			}
			var off int64
			var value string
			if _, err := fmt.Sscanf(sc.Text(), "%d %s", &off, &value); err != nil {
				t.Fatalf("cycle %d: child said %q", c, sc.Text())
			}
			if prev, ok := acked[off]; ok && prev != value {
				t.Fatalf("cycle %d: offset %d acknowledged twice: %s then %s", c, off, prev, value)
			}
			acked[off] = value
			n++
		}
		cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child exited on its own: %v\n%s", c, cmd.ProcessState, stderr.String())
		}
		verifyAcked(t, dir, acked)
		t.Logf("cycle %d: killed after %v, %d appends acknowledged this cycle, %d in all", c, killAfter, n, len(acked))
	}
}

func verifyAcked(t *testing.T, dir string, acked map[int64]string) {
	t.Helper()
	l := openLog(t, dir, quietConfig())
	defer l.Close()
	b, err := l.ReadBytes(0, 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatalf("log holds invalid bytes after recovery: %v", err)
	}
	found := map[int64]string{}
	next := int64(0)
	for _, p := range parts {
		h, _ := record.ParseHeader(p)
		if h.BaseOffset != next {
			t.Fatalf("batch at %d, expected %d", h.BaseOffset, next)
		}
		next = h.NextOffset()
		recs, err := record.Records(p)
		if err != nil {
			t.Fatal(err)
		}
		found[h.BaseOffset] = string(recs[0].Value)
	}
	for off, v := range acked {
		if found[off] != v {
			t.Fatalf("acknowledged append %q at offset %d lost (found %q)", v, off, found[off])
		}
	}
}
