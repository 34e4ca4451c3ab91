package streamtest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func TestStreamTableJoins(t *testing.T) {
	top := stream.NewTopology()
	users := stream.TableFrom(top, "users", "users-by-id", stream.String(), stream.String())
	views := stream.From(top, stream.String(), stream.String(), "pageviews")
	stream.JoinTable(views, users, func(_, page, region string) string { return page + "@" + region }).
		To("joined", stream.String(), stream.String())
	stream.LeftJoinTable(views, users, func(_, page, region string, found bool) string {
		if !found {
			return page + "@unknown"
		}
		return page + "@" + region
	}).To("left-joined", stream.String(), stream.String())

	d := streamtest.New(t, top, streamtest.Partitions("users", 3), streamtest.Partitions("pageviews", 3))
	u := streamtest.NewInput(d, "users", stream.String(), stream.String())
	v := streamtest.NewInput(d, "pageviews", stream.String(), stream.String())
	v.Pipe("ann", "/home") // before ann is known
	u.Pipe("ann", "eu")
	u.Pipe("bob", "us")
	v.Pipe("ann", "/cart")
	v.Pipe("bob", "/home")
	u.Pipe("ann", "apac") // a table update emits nothing
	v.Pipe("ann", "/pay")
	u.PipeTombstone("bob")
	v.Pipe("bob", "/gone")

	read := func(topic string) string {
		var out []string
		for _, r := range streamtest.NewOutput(d, topic, stream.String(), stream.String()).ReadAll() {
			out = append(out, r.Key+":"+r.Value)
		}
		return strings.Join(out, " ")
	}
	if got, want := read("joined"), "ann:/cart@eu bob:/home@us ann:/pay@apac"; got != want {
		t.Errorf("join:\n got %s\nwant %s", got, want)
	}
	if got, want := read("left-joined"), "ann:/home@unknown ann:/cart@eu bob:/home@us ann:/pay@apac bob:/gone@unknown"; got != want {
		t.Errorf("left join:\n got %s\nwant %s", got, want)
	}
}

func TestJoinChecksCoPartitioningAndKeys(t *testing.T) {
	build := func(rekey bool) *stream.Topology {
		top := stream.NewTopology()
		users := stream.TableFrom(top, "users", "users-by-id", stream.String(), stream.String())
		views := stream.From(top, stream.String(), stream.String(), "pageviews")
		if rekey {
			views = stream.SelectKey(views, func(_, v string) string { return v })
		}
		stream.JoinTable(views, users, func(_, p, r string) string { return p + r }).To("out", stream.String(), stream.String())
		return top
	}
	_, err := stream.NewLocal(build(false), stream.LocalConfig{Partitions: map[string]int32{"users": 3, "pageviews": 4}})
	if err == nil || !strings.Contains(err.Error(), "users: 3") || !strings.Contains(err.Error(), "pageviews: 4") {
		t.Errorf("mismatched partitions: err = %v, want one naming both topics and counts", err)
	}
	_, err = stream.NewLocal(build(true), stream.LocalConfig{})
	if err == nil || !strings.Contains(err.Error(), "repartition") {
		t.Errorf("re-keyed stream: err = %v, want a demand to repartition", err)
	}
}

func TestTableTableJoin(t *testing.T) {
	top := stream.NewTopology()
	users := stream.TableFrom(top, "users", "users-by-id", stream.String(), stream.String())
	orders := stream.From(top, stream.String(), stream.String(), "orders")
	counts := stream.Count(stream.GroupByKey(orders, stream.String(), stream.String()), "orders-per-user")
	stream.JoinTables(users, counts, func(_ string, region string, n int64) string { return fmt.Sprintf("%s/%d", region, n) }).
		ToStream().To("user-orders", stream.String(), stream.String())
	d := streamtest.New(t, top, streamtest.Partitions("users", 2), streamtest.Partitions("orders", 2))
	u := streamtest.NewInput(d, "users", stream.String(), stream.String())
	o := streamtest.NewInput(d, "orders", stream.String(), stream.String())
	o.Pipe("ann", "o1") // no user yet: a tombstone for ann
	u.Pipe("ann", "eu") // both sides now: eu/1
	o.Pipe("ann", "o2") // eu/2
	u.Pipe("bob", "us") // no orders for bob: tombstone
	u.PipeTombstone("ann")
	var got []string
	for _, r := range streamtest.NewOutput(d, "user-orders", stream.String(), stream.String()).ReadAll() {
		v := r.Value
		if r.Tombstone {
			v = "-"
		}
		got = append(got, r.Key+":"+v)
	}
	if want := "[ann:- ann:eu/1 ann:eu/2 bob:- ann:-]"; fmt.Sprint(got) != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}
}

func TestStreamStreamJoin(t *testing.T) {
	top := stream.NewTopology()
	clicks := stream.From(top, stream.String(), stream.String(), "clicks")
	buys := stream.From(top, stream.String(), stream.String(), "buys")
	stream.JoinStreams(clicks, buys, "click-buy", stream.JoinWindows{Within: 10 * time.Second, Grace: 5 * time.Second},
		func(_ string, click, buy string) string { return click + "+" + buy }, stream.String(), stream.String(), stream.String()).
		To("conversions", stream.String(), stream.String())
	d := streamtest.New(t, top)
	c := streamtest.NewInput(d, "clicks", stream.String(), stream.String())
	b := streamtest.NewInput(d, "buys", stream.String(), stream.String())
	at := func(s int) time.Time { return d.Now().Add(time.Duration(s) * time.Second) }
	c.PipeAt("ann", "c1", at(0))
	b.PipeAt("ann", "b1", at(8))  // within 10 s of c1
	b.PipeAt("bob", "b2", at(9))  // other key
	c.PipeAt("ann", "c2", at(15)) // 7 s after b1: joins it
	b.PipeAt("ann", "b3", at(40)) // stream time 40: c1, c2, b1, b2 expire (older than 40-15)
	c.PipeAt("ann", "c3", at(24)) // late: 24 < 40-15, dropped
	b.PipeAt("ann", "b4", at(30)) // not late; would join c3 (6 s apart) had c3 been kept
	c.PipeAt("ann", "c4", at(45)) // joins b3
	var got []string
	for _, r := range streamtest.NewOutput(d, "conversions", stream.String(), stream.String()).ReadAll() {
		got = append(got, fmt.Sprintf("%s:%s@%s", r.Key, r.Value, r.Timestamp.Format("04:05")))
	}
	if want := "[ann:c1+b1@00:08 ann:c2+b1@00:15 ann:c4+b3@00:45]"; fmt.Sprint(got) != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}
	left := streamtest.NewStore(d, "click-buy-left", stream.Bytes(), stream.Bytes()).Len()
	right := streamtest.NewStore(d, "click-buy-right", stream.Bytes(), stream.Bytes()).Len()
	if left != 2 || right != 4 { // c4; b3 and b4 (at the cutoff, 45-15); two index keys each
		t.Errorf("stores hold %d and %d entries, want 2 and 4 (expired records leave)", left, right)
	}
}
