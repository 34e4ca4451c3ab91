package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func TestPageviews(t *testing.T) {
	d := streamtest.New(t, Topology(), streamtest.AppID("pageviews"),
		streamtest.Partitions("pageviews", 6), streamtest.Partitions("users", 6))
	users := streamtest.NewInput(d, "users", stream.String(), stream.JSON[User]())
	views := streamtest.NewInput(d, "pageviews", stream.String(), stream.JSON[View]())
	out := streamtest.NewOutput(d, "pageviews-per-region", stream.String(), stream.JSON[RegionMinute]())
	users.Pipe("ann", User{Region: "eu"})
	users.Pipe("bob", User{Region: "us"})
	base := d.Now()
	views.PipeAt("ann", View{Page: "/"}, base.Add(5*time.Second))
	views.PipeAt("bob", View{Page: "/"}, base.Add(10*time.Second))
	views.PipeAt("ann", View{Page: "/cart"}, base.Add(20*time.Second))
	views.PipeAt("eve", View{Page: "/"}, base.Add(30*time.Second)) // no user: region unknown
	if got := out.ReadAll(); len(got) != 0 {
		t.Fatalf("emitted before the minute closed: %+v", got)
	}
	// The views stop; after 30 s of quiet the window clock follows the wall clock, and the
	// minute closes at 1:10 of window time.
	for i := 0; i < 20; i++ {
		d.AdvanceWallClock(5 * time.Second)
	}
	got := map[string]int64{}
	for _, r := range out.ReadAll() {
		if !r.Value.Start.Equal(base) || !r.Value.End.Equal(base.Add(time.Minute)) {
			t.Errorf("%s: window [%v, %v), want the first minute", r.Key, r.Value.Start, r.Value.End)
		}
		got[r.Key] = r.Value.Views
	}
	if fmt.Sprint(got) != "map[eu:2 unknown:1 us:1]" {
		t.Errorf("views per region = %v, want eu 2, us 1, unknown 1", got)
	}
}
