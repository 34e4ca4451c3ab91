package journal

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	cleanCrashDirEnv  = "STRAND_CLEAN_CRASH_DIR"
	cleanCrashStepEnv = "STRAND_CLEAN_CRASH_STEP"
	crashRecords      = 20 // records per generated batch
	crashKeys         = 300
)

// crashBatch is generated batch i: the same bytes for the child that writes it and the
// parent that checks it.
func crashBatch(t testing.TB, i int) ([]byte, []update) {
	rng := rand.New(rand.NewPCG(uint64(i), 99))
	ups := make([]update, crashRecords)
	for j := range ups {
		ups[j].key = []byte(fmt.Sprintf("k%03d", rng.IntN(crashKeys)))
		if rng.IntN(10) != 0 {
			ups[j].value = []byte(fmt.Sprintf("b%d-r%d-%s", i, j, strings.Repeat("x", rng.IntN(200))))
		}
	}
	return buildUpdates(t, ups, int64(i), allCodecs[i%len(allCodecs)]), ups
}

func crashConfig() Config {
	cfg := quietConfig()
	cfg.Fsync = FsyncNever // a kill -9 loses nothing the page cache holds
	cfg.SegmentBytes = 16 << 10
	cfg.IndexIntervalBytes = 512
	return cfg
}

// TestCleanCrashChild is the child side of TestCleanCrashKill: it appends generated
// batches, printing "acked i" after each, and cleans between rounds of appends with a
// throttle that stretches every pass. With STRAND_CLEAN_CRASH_STEP it kills itself at that
// step of its first swap.
func TestCleanCrashChild(t *testing.T) {
	dir := os.Getenv(cleanCrashDirEnv)
	if dir == "" {
		t.Skip("only runs as TestCleanCrashKill's child")
	}
	if step := os.Getenv(cleanCrashStepEnv); step != "" {
		cleanHook = func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	l, err := Open(dir, crashConfig())
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	c := NewCleaner(CleanerConfig{DedupeBufferSize: 64 << 10, IOBytesPerSecond: 4 << 20})
	next := int(l.LogEndOffset() / crashRecords)
	for {
		for k := 0; k < 40; k++ {
			b, _ := crashBatch(t, next)
			res, err := l.Append(context.Background(), b, AppendOptions{})
			if err != nil || res.BaseOffset != int64(next*crashRecords) {
				fmt.Fprintln(os.Stderr, "append:", res.BaseOffset, err)
				os.Exit(4)
			}
			fmt.Fprintf(out, "acked %d\n", next)
			out.Flush()
			next++
		}
		fmt.Fprintln(out, "cleaning")
		out.Flush()
		if _, err := c.Clean(context.Background(), l, Compaction{Force: true}); err != nil {
			fmt.Fprintln(os.Stderr, "clean:", err)
			os.Exit(5)
		}
	}
}

// TestCleanCrashKill kills a child with SIGKILL while it cleans: first at each step of a
// swap, then at random moments. After every kill it reopens the log and checks that it
// holds only valid batches with increasing offsets, nothing acknowledged is lost, no
// .cleaned or .swap file is left, and the table read from the log equals the table of every
// batch written (delete.retention.ms is 0, so tombstones go on their second clean and a
// key whose tombstone went must not come back). STRAND_CRASH_CYCLES sets the number of
// random kills (default 8).
func TestCleanCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	cycles := 8
	if s := os.Getenv("STRAND_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	acked := -1
	steps := []string{"cleaned-written", "swap-decided", "first-old-retired", "olds-retired", "swap-renamed"}
	deadline := time.Now().Add(2 * time.Minute)
	for c := 0; c < len(steps)+cycles && time.Now().Before(deadline); c++ {
		step := ""
		if c < len(steps) {
			step = steps[c]
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCleanCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), cleanCrashDirEnv+"="+dir, cleanCrashStepEnv+"="+step)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := time.Duration(rand.IntN(400)) * time.Millisecond
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		sc := bufio.NewScanner(stdout)
		cleans := 0
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "cleaning":
				if cleans == 0 && step == "" {
					timer.Reset(killAfter)
				}
				cleans++
			case strings.HasPrefix(line, "acked "):
				n, _ := strconv.Atoi(strings.TrimPrefix(line, "acked "))
				acked = max(acked, n)
			default:
				t.Fatalf("cycle %d: child said %q", c, line)
			}
		}
		cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child exited on its own: %v\n%s", c, cmd.ProcessState, stderr.String())
		}
		verifyCleanedLog(t, dir, acked)
		t.Logf("cycle %d: killed at %q after %d cleans (%v), %d batches acknowledged", c, step, cleans, killAfter, acked+1)
	}
}

func verifyCleanedLog(t *testing.T, dir string, acked int) {
	t.Helper()
	for _, pattern := range []string{"*" + cleanedExt, "*" + swapExt} {
		if before, _ := filepath.Glob(filepath.Join(dir, pattern)); len(before) > 0 {
			t.Logf("recovery will resolve %v", before)
		}
	}
	l := openLog(t, dir, crashConfig())
	defer l.Close()
	for _, pattern := range []string{"*" + cleanedExt, "*" + swapExt} {
		if left, _ := filepath.Glob(filepath.Join(dir, pattern)); len(left) > 0 {
			t.Fatalf("left after recovery: %v", left)
		}
	}
	end := l.LogEndOffset()
	if end%crashRecords != 0 || int(end/crashRecords) <= acked {
		t.Fatalf("log ends at %d: acknowledged batches up to %d lost", end, acked)
	}
	want := table{}
	for i := 0; i < int(end/crashRecords); i++ {
		_, ups := crashBatch(t, i)
		for _, u := range ups {
			want.apply(u.key, u.value)
		}
	}
	checkTable(t, scanLog(t, l).table, want)
}
