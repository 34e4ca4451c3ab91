package streamtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

// windowed builds a per-key count over w from topic "clicks" to "counts".
func windowed(w stream.Windows) (*stream.Topology, stream.Codec[stream.Windowed[string]]) {
	top := stream.NewTopology()
	clicks := stream.From(top, stream.String(), stream.String(), "clicks")
	counts := stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(clicks, stream.String(), stream.String()), w), "clicks-per-window")
	kc := stream.WindowedCodec(stream.String(), w.Size())
	counts.ToStream().To("counts", kc, stream.Int64())
	return top, kc
}

func readWindows(d *streamtest.Driver, kc stream.Codec[stream.Windowed[string]]) []string {
	var out []string
	for _, r := range streamtest.NewOutput(d, "counts", kc, stream.Int64()).ReadAll() {
		out = append(out, fmt.Sprintf("%s[%s,%s)=%d", r.Key.Key, r.Key.Start.Format("04:05"), r.Key.End.Format("04:05"), r.Value))
	}
	return out
}

func TestTumblingWindowsEmitOnUpdate(t *testing.T) {
	top, kc := windowed(stream.Tumbling(time.Minute))
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	base := d.Now()
	in.PipeAt("a", "x", base)
	in.PipeAt("a", "x", base.Add(30*time.Second))
	in.PipeAt("b", "x", base.Add(59*time.Second))
	in.PipeAt("a", "x", base.Add(61*time.Second))
	got := fmt.Sprint(readWindows(d, kc))
	want := "[a[00:00,01:00)=1 a[00:00,01:00)=2 b[00:00,01:00)=1 a[01:00,02:00)=1]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestHoppingWindows(t *testing.T) {
	top, kc := windowed(stream.Hopping(10*time.Second, 5*time.Second))
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	in.PipeAt("a", "x", d.Now().Add(7*time.Second))
	// 7 s lies in [5 s, 15 s) and [0 s, 10 s); the later window first, as Kafka lists them.
	if got, want := fmt.Sprint(readWindows(d, kc)), "[a[00:05,00:15)=1 a[00:00,00:10)=1]"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestGraceAndLateRecords: a record for a window whose end plus grace stream time has
// passed is dropped; one within the grace period still counts.
func TestGraceAndLateRecords(t *testing.T) {
	top, kc := windowed(stream.Tumbling(time.Minute).Grace(10 * time.Second))
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	base := d.Now()
	in.PipeAt("a", "x", base)
	in.PipeAt("a", "x", base.Add(65*time.Second)) // stream time 65 s: [0,60) still open (grace to 70 s)
	in.PipeAt("a", "x", base.Add(50*time.Second)) // late but within grace: counts
	in.PipeAt("a", "x", base.Add(70*time.Second)) // stream time 70 s: [0,60) closes
	in.PipeAt("a", "x", base.Add(55*time.Second)) // too late: dropped
	got := fmt.Sprint(readWindows(d, kc))
	want := "[a[00:00,01:00)=1 a[01:00,02:00)=1 a[00:00,01:00)=2 a[01:00,02:00)=2]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if n := streamtest.NewStore(d, "clicks-per-window", stream.Bytes(), stream.Int64()).Len(); n != 1 {
		t.Errorf("store holds %d windows, want 1 (the closed one leaves)", n)
	}
}

func TestEmitFinal(t *testing.T) {
	top, kc := windowed(stream.Tumbling(time.Minute).Grace(10 * time.Second).EmitFinal())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	base := d.Now()
	for _, s := range []int{0, 10, 20} {
		in.PipeAt("a", "x", base.Add(time.Duration(s)*time.Second))
	}
	in.PipeAt("b", "x", base.Add(30*time.Second))
	if got := readWindows(d, kc); len(got) != 0 {
		t.Fatalf("emitted before the window closed: %v", got)
	}
	in.PipeAt("a", "x", base.Add(75*time.Second)) // 75 s ≥ 60 s + 10 s grace
	if got, want := fmt.Sprint(readWindows(d, kc)), "[a[00:00,01:00)=3 b[00:00,01:00)=1]"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestWindowClosesOnIdlePartition: with AdvanceWhenIdle, a window closes after the
// partition has been quiet, without a later record to move stream time.
func TestWindowClosesOnIdlePartition(t *testing.T) {
	top, kc := windowed(stream.Tumbling(time.Minute).EmitFinal().AdvanceWhenIdle(5 * time.Second))
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	in.PipeAt("a", "x", d.Now().Add(10*time.Second))
	in.PipeAt("a", "x", d.Now().Add(20*time.Second))
	for i := 0; i < 8; i++ { // 40 s of wall time: the clock is at 60 s only at the end
		d.AdvanceWallClock(5 * time.Second)
		if got := readWindows(d, kc); len(got) != 0 && i < 7 {
			t.Fatalf("closed after %d s idle: %v", 5*(i+1), got)
		} else if i == 7 {
			if want := "[a[00:00,01:00)=2]"; fmt.Sprint(got) != want {
				t.Fatalf("after 40 s idle got %v, want %s", got, want)
			}
		}
	}
	// Without AdvanceWhenIdle the same window stays open however long the wall clock runs.
	top2, kc2 := windowed(stream.Tumbling(time.Minute).EmitFinal())
	d2 := streamtest.New(t, top2)
	streamtest.NewInput(d2, "clicks", stream.String(), stream.String()).PipeAt("a", "x", d2.Now().Add(10*time.Second))
	d2.AdvanceWallClock(time.Hour)
	if got := readWindows(d2, kc2); len(got) != 0 {
		t.Errorf("closed without idle advance: %v", got)
	}
}
