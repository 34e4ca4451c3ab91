package stream_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/strand-data/strand/stream"
)

type Order struct {
	OrderID string  `json:"order_id"`
	Amount  float64 `json:"amount"`
}

type Totals struct {
	Count int64   `json:"count"`
	Total float64 `json:"total"`
}

// A job that keeps per-customer order totals, run with NewLocal (no broker).
func ExampleAggregate() {
	t := stream.NewTopology()
	orders := stream.From(t, stream.String(), stream.JSON[Order](), "orders")
	totals := stream.Aggregate(stream.GroupByKey(orders, stream.String(), stream.JSON[Order]()), "totals",
		func() Totals { return Totals{} },
		func(_ string, o Order, acc Totals) Totals { return Totals{acc.Count + 1, acc.Total + o.Amount} },
		stream.JSON[Totals]())
	totals.ToStream().To("order-totals", stream.String(), stream.JSON[Totals]())

	local, err := stream.NewLocal(t, stream.LocalConfig{AppID: "ordertotals"})
	if err != nil {
		panic(err)
	}
	defer local.Close()
	for _, o := range []string{`{"order_id":"1","amount":5}`, `{"order_id":"2","amount":7.5}`} {
		if err := local.Pipe("orders", []byte("alice"), []byte(o), time.Time{}, nil); err != nil {
			panic(err)
		}
	}
	for _, r := range local.TakeOutputs() {
		fmt.Printf("%s %s %s\n", r.Topic, r.Key, r.Value)
	}
	// Output:
	// ordertotals-totals-changelog alice {"count":1,"total":5}
	// order-totals alice {"count":1,"total":5}
	// ordertotals-totals-changelog alice {"count":2,"total":12.5}
	// order-totals alice {"count":2,"total":12.5}
}

// Re-keying needs a named repartition topic: "<app-id>-words-repartition" here.
func ExampleGroupBy() {
	t := stream.NewTopology()
	lines := stream.From(t, stream.Bytes(), stream.String(), "text")
	words := stream.FlatMap(lines, func(_ []byte, line string) []stream.KeyValue[string, string] {
		var out []stream.KeyValue[string, string]
		for _, w := range strings.Fields(line) {
			out = append(out, stream.KeyValue[string, string]{Key: w, Value: w})
		}
		return out
	})
	counts := stream.Count(stream.GroupBy(words, "words", func(w, _ string) string { return w }, stream.String(), stream.String()), "counts")
	counts.ToStream().To("word-counts", stream.String(), stream.Int64())
	fmt.Print(t.Describe())
	// Output:
	// Topologies:
	//    Sub-topology: 0
	//     Source: source-1 (topics: [text])
	//       --> flat-map-2
	//     Processor: flat-map-2 (stores: [])
	//       --> select-key-3
	//       <-- source-1
	//     Processor: select-key-3 (stores: [])
	//       --> words-repartition-sink
	//       <-- flat-map-2
	//     Sink: words-repartition-sink (topic: words-repartition)
	//       <-- select-key-3
	//    Sub-topology: 1
	//     Source: words-repartition-source (topics: [words-repartition])
	//       --> aggregate-counts
	//     Processor: aggregate-counts (stores: [counts])
	//       --> to-stream-4
	//       <-- words-repartition-source
	//     Processor: to-stream-4 (stores: [])
	//       --> to-word-counts-5
	//       <-- aggregate-counts
	//     Sink: to-word-counts-5 (topic: word-counts)
	//       <-- to-stream-4
}

// Running a topology against a cluster: one instance of the consumer group "ordertotals".
func ExampleNew() {
	t := stream.NewTopology()
	stream.From(t, stream.String(), stream.String(), "in").
		Filter(func(_, v string) bool { return v != "" }).
		To("out", stream.String(), stream.String())
	app, err := stream.New(t, stream.Config{Brokers: []string{"127.0.0.1:9092"}, AppID: "copier", StateDir: "/var/lib/copier"})
	if err != nil {
		panic(err)
	}
	// Run until SIGTERM; then it commits what it processed and leaves the group.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
