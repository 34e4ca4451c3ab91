package streamtest_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func TestMapFilterPeekTo(t *testing.T) {
	top := stream.NewTopology()
	var peeked []string
	s := stream.From(top, stream.String(), stream.String(), "in")
	up := stream.Map(s, func(k, v string) (string, string) { return strings.ToUpper(k), v + "!" })
	up.Filter(func(_, v string) bool { return v != "drop!" }).
		Peek(func(k, _ string) { peeked = append(peeked, k) }).
		To("out", stream.String(), stream.String())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "in", stream.String(), stream.String())
	out := streamtest.NewOutput(d, "out", stream.String(), stream.String())
	in.Pipe("a", "x")
	in.Pipe("b", "drop")
	in.Pipe("c", "y")
	got := out.ReadAll()
	want := []string{"A=x!", "C=y!"}
	if len(got) != len(want) {
		t.Fatalf("got %d records %+v, want %v", len(got), got, want)
	}
	for i, r := range got {
		if s := r.Key + "=" + r.Value; s != want[i] {
			t.Errorf("record %d = %s, want %s", i, s, want[i])
		}
	}
	if fmt.Sprint(peeked) != "[A C]" {
		t.Errorf("peeked %v, want [A C]", peeked)
	}
}

func TestMapValuesAndFlatMap(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.String(), "lines")
	n := stream.MapValues(s, func(_, v string) int64 { return int64(len(v)) })
	n.To("lengths", stream.String(), stream.Int64())
	words := stream.FlatMap(s, func(_, line string) []stream.KeyValue[string, string] {
		var out []stream.KeyValue[string, string]
		for _, w := range strings.Fields(line) {
			out = append(out, stream.KeyValue[string, string]{Key: w, Value: line})
		}
		return out
	})
	words.To("words", stream.String(), stream.String())
	d := streamtest.New(t, top)
	streamtest.NewInput(d, "lines", stream.String(), stream.String()).Pipe("k", "to be or")
	lengths := streamtest.NewOutput(d, "lengths", stream.String(), stream.Int64()).ReadAll()
	if len(lengths) != 1 || lengths[0].Key != "k" || lengths[0].Value != 8 {
		t.Errorf("lengths = %+v, want k=8", lengths)
	}
	var got []string
	for _, r := range streamtest.NewOutput(d, "words", stream.String(), stream.String()).ReadAll() {
		got = append(got, r.Key)
	}
	if fmt.Sprint(got) != "[to be or]" {
		t.Errorf("words = %v", got)
	}
}

func TestBranchAndMerge(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.Int64(), "numbers")
	b := s.Branch(func(_ string, v int64) bool { return v < 0 }, func(_ string, v int64) bool { return v%2 == 0 })
	b[0].To("negative", stream.String(), stream.Int64())
	b[1].To("even", stream.String(), stream.Int64())
	other := stream.From(top, stream.String(), stream.Int64(), "more")
	b[1].Merge(other).To("merged", stream.String(), stream.Int64())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "numbers", stream.String(), stream.Int64())
	for _, v := range []int64{-2, 1, 4, 7, -3, 6} {
		in.Pipe("k", v)
	}
	streamtest.NewInput(d, "more", stream.String(), stream.Int64()).Pipe("m", 100)
	values := func(topic string) []int64 {
		var out []int64
		for _, r := range streamtest.NewOutput(d, topic, stream.String(), stream.Int64()).ReadAll() {
			out = append(out, r.Value)
		}
		return out
	}
	// -2 goes to the first branch only: the first matching predicate wins.
	if got := fmt.Sprint(values("negative")); got != "[-2 -3]" {
		t.Errorf("negative = %s", got)
	}
	if got := fmt.Sprint(values("even")); got != "[4 6]" {
		t.Errorf("even = %s", got)
	}
	if got := fmt.Sprint(values("merged")); got != "[4 6 100]" {
		t.Errorf("merged = %s", got)
	}
}

type order struct {
	OrderID  string  `json:"order_id"`
	Amount   float64 `json:"amount"`
	Customer string  `json:"customer"`
}

// TestGroupByRepartitionsThroughNamedTopic: re-keying goes through
// "<app>-<name>-repartition", partitioned by murmur2 of the new key, and the count lands
// on the partition that owns the key.
func TestGroupByRepartitionsThroughNamedTopic(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.JSON[order](), "orders-by-id")
	g := stream.GroupBy(s, "by-customer", func(_ string, o order) string { return o.Customer }, stream.String(), stream.JSON[order]())
	stream.Count(g, "orders-per-customer").ToStream().To("counts", stream.String(), stream.Int64())
	d := streamtest.New(t, top, streamtest.AppID("shop"), streamtest.Partitions("orders-by-id", 4))
	in := streamtest.NewInput(d, "orders-by-id", stream.String(), stream.JSON[order]())
	for i := 0; i < 10; i++ {
		in.Pipe(fmt.Sprintf("o%d", i), order{OrderID: fmt.Sprint(i), Customer: []string{"ann", "bob"}[i%3/2]})
	}
	rep := d.Records("shop-by-customer-repartition")
	if len(rep) != 10 {
		t.Fatalf("repartition topic got %d records, want 10", len(rep))
	}
	parts := map[string]int32{}
	for _, r := range rep {
		if p, ok := parts[string(r.Key)]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d", r.Key, p, r.Partition)
		}
		parts[string(r.Key)] = r.Partition
	}
	latest := streamtest.NewOutput(d, "counts", stream.String(), stream.Int64()).Latest()
	if latest["ann"] != 7 || latest["bob"] != 3 {
		t.Errorf("counts = %v, want ann 7, bob 3", latest)
	}
	store := streamtest.NewStore(d, "orders-per-customer", stream.String(), stream.Int64())
	if n, ok := store.Get("ann"); !ok || n != 7 {
		t.Errorf("store ann = %d %v, want 7", n, ok)
	}
	if store.Len() != 2 {
		t.Errorf("store has %d keys, want 2", store.Len())
	}
	if cl := d.Records("shop-orders-per-customer-changelog"); len(cl) != 10 {
		t.Errorf("changelog got %d records, want one per update (10)", len(cl))
	}
}

func TestGroupByKeyAfterRekeyIsRefused(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.String(), "in")
	rekeyed := stream.SelectKey(s, func(_, v string) string { return v })
	stream.Count(stream.GroupByKey(rekeyed, stream.String(), stream.String()), "c")
	_, err := stream.NewLocal(top, stream.LocalConfig{})
	if err == nil || !strings.Contains(err.Error(), "repartition") {
		t.Fatalf("err = %v, want a demand for a named repartition", err)
	}
}

func TestReduceAndAggregate(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.Int64(), "readings")
	g := stream.GroupByKey(s, stream.String(), stream.Int64())
	stream.Reduce(g, "max", func(acc, v int64) int64 { return max(acc, v) }).ToStream().To("max-out", stream.String(), stream.Int64())
	type stats struct{ N, Sum int64 }
	stream.Aggregate(g, "stats", func() stats { return stats{} },
		func(_ string, v int64, s stats) stats { return stats{s.N + 1, s.Sum + v} }, stream.JSON[stats]())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "readings", stream.String(), stream.Int64())
	for _, v := range []int64{5, 9, 2} {
		in.Pipe("x", v)
	}
	in.Pipe("y", -4)
	var maxes []int64
	for _, r := range streamtest.NewOutput(d, "max-out", stream.String(), stream.Int64()).ReadAll() {
		if r.Key == "x" {
			maxes = append(maxes, r.Value)
		}
	}
	if fmt.Sprint(maxes) != "[5 9 9]" {
		t.Errorf("max updates = %v, want [5 9 9]", maxes)
	}
	if v, _ := streamtest.NewStore(d, "max", stream.String(), stream.Int64()).Get("y"); v != -4 {
		t.Errorf("max y = %d, want -4", v)
	}
	st, ok := streamtest.NewStore(d, "stats", stream.String(), stream.JSON[stats]()).Get("x")
	if !ok || st != (stats{3, 16}) {
		t.Errorf("stats x = %+v, want {3 16}", st)
	}
}

func TestTableFromCompactedTopic(t *testing.T) {
	top := stream.NewTopology()
	stream.TableFrom(top, "users", "users-store", stream.String(), stream.String()).ToStream().To("user-updates", stream.String(), stream.String())
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "users", stream.String(), stream.String())
	in.Pipe("u1", "eu")
	in.Pipe("u2", "us")
	in.Pipe("u1", "apac")
	in.PipeTombstone("u2")
	store := streamtest.NewStore(d, "users-store", stream.String(), stream.String())
	if v, ok := store.Get("u1"); !ok || v != "apac" {
		t.Errorf("u1 = %q %v, want apac", v, ok)
	}
	if _, ok := store.Get("u2"); ok {
		t.Error("u2 survived its tombstone")
	}
	out := streamtest.NewOutput(d, "user-updates", stream.String(), stream.String()).ReadAll()
	if len(out) != 4 || !out[3].Tombstone {
		t.Errorf("updates = %+v, want 4 with a final tombstone", out)
	}
}

func TestBadRecordPolicies(t *testing.T) {
	build := func() *stream.Topology {
		top := stream.NewTopology()
		stream.From(top, stream.String(), stream.JSON[order](), "orders").To("ok", stream.String(), stream.JSON[order]())
		return top
	}
	t.Run("fail", func(t *testing.T) {
		d := streamtest.New(t, build())
		err := d.PipeRaw("orders", []byte("k"), []byte("{not json"), time.Time{})
		if !errors.Is(err, stream.ErrBadRecord) {
			t.Fatalf("err = %v, want ErrBadRecord", err)
		}
	})
	t.Run("skip", func(t *testing.T) {
		d := streamtest.New(t, build(), streamtest.BadRecords(stream.BadRecordSkip, ""))
		if err := d.PipeRaw("orders", []byte("k"), []byte("{not json"), time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := d.PipeRaw("orders", []byte("k"), []byte(`{"order_id":"1","amount":2}`), time.Time{}); err != nil {
			t.Fatal(err)
		}
		if n := len(d.Records("ok")); n != 1 || d.Skipped() != 1 {
			t.Errorf("outputs %d skipped %d, want 1 and 1", n, d.Skipped())
		}
	})
	t.Run("dead-letter", func(t *testing.T) {
		d := streamtest.New(t, build(), streamtest.BadRecords(stream.BadRecordDeadLetter, "dlq"))
		if err := d.PipeRaw("orders", []byte("k"), []byte("{not json"), time.Time{}); err != nil {
			t.Fatal(err)
		}
		dl := d.Records("dlq")
		if len(dl) != 1 || string(dl[0].Value) != "{not json" {
			t.Fatalf("dead letters = %+v", dl)
		}
		headers := map[string]string{}
		for _, h := range dl[0].Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[stream.HeaderErrorTopic] != "orders" || headers[stream.HeaderErrorOffset] != "0" ||
			!strings.Contains(headers[stream.HeaderErrorMessage], "json") {
			t.Errorf("headers = %v", headers)
		}
	})
}

// dedupe is a processor-API node: it forwards a key's first record only, remembering keys
// in a store, and every 10 s of stream time and every minute of wall time it forwards a
// marker record.
type dedupe struct {
	ctx  stream.ProcessorContext
	seen stream.KeyValueStore
}

func (p *dedupe) Init(ctx stream.ProcessorContext) error {
	p.ctx = ctx
	s, err := ctx.Store("seen")
	if err != nil {
		return err
	}
	p.seen = s
	ctx.Schedule(10*time.Second, stream.StreamTime, func(now time.Time) error {
		return ctx.Forward(stream.Record{Key: "tick-stream", Value: now.Format("15:04:05"), Timestamp: now})
	})
	ctx.Schedule(time.Minute, stream.WallClockTime, func(now time.Time) error {
		return ctx.Forward(stream.Record{Key: "tick-wall", Value: now.Format("15:04:05"), Timestamp: now})
	})
	return nil
}

func (p *dedupe) Process(rec stream.Record) error {
	key := []byte(rec.Key.(string))
	v, err := p.seen.Get(key)
	if err != nil || v != nil {
		return err
	}
	if err := p.seen.Put(key, []byte{1}); err != nil {
		return err
	}
	return p.ctx.Forward(rec)
}

func (p *dedupe) Close() error { return nil }

func TestProcessorAPIStoreAndPunctuators(t *testing.T) {
	top := stream.NewTopology()
	stream.AddSource(top, "src", stream.String(), stream.String(), "events")
	top.AddProcessor("dedupe", func() stream.Processor { return &dedupe{} }, "src")
	top.AddStore("seen", "dedupe")
	stream.AddSink(top, "sink", "unique", stream.String(), stream.String(), "dedupe")
	d := streamtest.New(t, top)
	in := streamtest.NewInput(d, "events", stream.String(), stream.String())
	base := d.Now()
	in.PipeAt("a", "1", base)                     // first record: stream punctuator fires at once
	in.PipeAt("a", "2", base.Add(5*time.Second))  // duplicate, stream time +5 s: nothing
	in.PipeAt("b", "3", base.Add(12*time.Second)) // +12 s: past the 10 s deadline
	d.AdvanceWallClock(30 * time.Second)          // not yet a minute
	d.AdvanceWallClock(30 * time.Second)          // a minute: wall punctuator
	var got []string
	for _, r := range streamtest.NewOutput(d, "unique", stream.String(), stream.String()).ReadAll() {
		got = append(got, r.Key+"@"+r.Value)
	}
	want := "[a@1 tick-stream@00:00:00 b@3 tick-stream@00:00:12 tick-wall@00:01:00]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
}

func TestDescribe(t *testing.T) {
	top := stream.NewTopology()
	s := stream.From(top, stream.String(), stream.JSON[order](), "orders")
	g := stream.GroupBy(s, "by-customer", func(_ string, o order) string { return o.Customer }, stream.String(), stream.JSON[order]())
	stream.Count(g, "per-customer").ToStream().To("counts", stream.String(), stream.Int64())
	text := top.Describe().String()
	for _, want := range []string{
		"Sub-topology: 0", "Source: source-1 (topics: [orders])", "Sink: by-customer-repartition-sink (topic: by-customer-repartition)",
		"Sub-topology: 1", "Source: by-customer-repartition-source (topics: [by-customer-repartition])",
		"Processor: aggregate-per-customer (stores: [per-customer])", "Sink: to-counts-4 (topic: counts)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Describe() lacks %q:\n%s", want, text)
		}
	}
	dot := top.Describe().DOT()
	for _, want := range []string{"digraph topology", "subgraph cluster_1", `"store:per-customer" [shape=cylinder`, `"topic:orders" -> "source-1"`} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT() lacks %q:\n%s", want, dot)
		}
	}
}

// TestSinkPartitionsLikeJava: output records land where Java's default partitioner puts
// them, toPositive(murmur2(key)) % n, with the murmur2 values of Kafka's
// UtilsTest#testMurmur2.
func TestSinkPartitionsLikeJava(t *testing.T) {
	javaMurmur2 := map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107,
	}
	top := stream.NewTopology()
	stream.Repartition(stream.From(top, stream.String(), stream.String(), "in"), "spread", stream.String(), stream.String()).
		To("out", stream.String(), stream.String())
	const n = 12
	d := streamtest.New(t, top, streamtest.Partitions("in", n))
	in := streamtest.NewInput(d, "in", stream.String(), stream.String())
	keys := make([]string, 0, len(javaMurmur2))
	for k := range javaMurmur2 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Pipe(k, "v")
	}
	rep := d.Records("app-spread-repartition")
	if len(rep) != len(keys) {
		t.Fatalf("repartition topic has %d records, want %d", len(rep), len(keys))
	}
	for _, r := range rep {
		want := (javaMurmur2[string(r.Key)] & 0x7fffffff) % n
		if r.Partition != want {
			t.Errorf("key %q on partition %d, Java puts it on %d", r.Key, r.Partition, want)
		}
	}
	if got := len(d.Records("out")); got != len(keys) {
		t.Errorf("out has %d records, want %d", got, len(keys))
	}
}
