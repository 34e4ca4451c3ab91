package streamtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func sessions(w stream.SessionWindows) (*stream.Topology, stream.Codec[stream.Windowed[string]]) {
	top := stream.NewTopology()
	clicks := stream.From(top, stream.String(), stream.String(), "clicks")
	counts := stream.SessionCount(stream.SessionWindowedBy(stream.GroupByKey(clicks, stream.String(), stream.String()), w), "sessions")
	kc := stream.SessionWindowedCodec(stream.String())
	counts.ToStream().To("counts", kc, stream.Int64())
	return top, kc
}

func readSessions(d *streamtest.Driver, kc stream.Codec[stream.Windowed[string]]) []string {
	var out []string
	for _, r := range streamtest.NewOutput(d, "counts", kc, stream.Int64()).ReadAll() {
		v := fmt.Sprint(r.Value)
		if r.Tombstone {
			v = "-"
		}
		out = append(out, fmt.Sprintf("%s[%s,%s]=%s", r.Key.Key, r.Key.Start.Format("04:05"), r.Key.End.Format("04:05"), v))
	}
	return out
}

// TestSessionWindowsMerge: records within the gap extend a session; a record between two
// sessions merges them, and the merged-away sessions are retracted with tombstones.
func TestSessionWindowsMerge(t *testing.T) {
	top, kc := sessions(stream.Sessions(10 * time.Second).Grace(time.Minute))
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	at := func(s int) time.Time { return d.Now().Add(time.Duration(s) * time.Second) }
	in.PipeAt("a", "x", at(0))
	in.PipeAt("a", "x", at(5))  // extends [0,0] to [0,5]
	in.PipeAt("a", "x", at(20)) // more than 10 s after 5: a new session
	in.PipeAt("a", "x", at(13)) // within 10 s of 5 and of 20: merges both
	got := fmt.Sprint(readSessions(d, kc))
	want := "[a[00:00,00:00]=1 a[00:00,00:00]=- a[00:00,00:05]=2 a[00:20,00:20]=1 a[00:00,00:05]=- a[00:20,00:20]=- a[00:00,00:20]=4]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if n := streamtest.NewStore(d, "sessions", stream.Bytes(), stream.Bytes()).Len(); n != 2 {
		t.Errorf("store has %d entries, want 2 (one session, both of its index keys)", n)
	}
}

func TestSessionWindowsEmitFinalAndLate(t *testing.T) {
	top, kc := sessions(stream.Sessions(10 * time.Second).EmitFinal())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	at := func(s int) time.Time { return d.Now().Add(time.Duration(s) * time.Second) }
	in.PipeAt("a", "x", at(0))
	in.PipeAt("a", "x", at(8))
	in.PipeAt("b", "x", at(12))
	if got := readSessions(d, kc); len(got) != 0 {
		t.Fatalf("emitted before close: %v", got)
	}
	in.PipeAt("b", "x", at(19)) // stream time 19 s: a's session [0,8] closes after 18 s
	if got, want := fmt.Sprint(readSessions(d, kc)), "[a[00:00,00:08]=2]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	in.PipeAt("a", "x", at(7)) // would join the closed session: late, dropped
	in.PipeAt("c", "x", at(60))
	if got, want := fmt.Sprint(readSessions(d, kc)), "[b[00:12,00:19]=2]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
