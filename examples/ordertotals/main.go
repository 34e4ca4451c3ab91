// Command ordertotals keeps, per customer, the number of orders and their sum: it reads
// topic "orders" (key: customer id; value JSON {"order_id": "...", "amount": <number>}) and
// writes {"count": <orders>, "total": <sum of amounts>} as JSON to the compacted topic
// "order-totals" (key: customer id). Other tools rely on this contract.
//
//	go run ./examples/ordertotals --brokers 127.0.0.1:9092
//
// Run more instances (each with its own --state-dir) to share the partitions. The running
// totals live in the store "totals", changelogged to "<app-id>-totals-changelog".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/stream"
)

// Order is a record of topic "orders".
type Order struct {
	OrderID string  `json:"order_id"`
	Amount  float64 `json:"amount"`
}

// Totals is a record of topic "order-totals".
type Totals struct {
	Count int64   `json:"count"`
	Total float64 `json:"total"`
}

// Topology builds the job: orders grouped by their key (already the customer id, so no
// repartition), folded into the store "totals", every new value written to order-totals.
func Topology() *stream.Topology {
	t := stream.NewTopology()
	orders := stream.From(t, stream.String(), stream.JSON[Order](), "orders")
	totals := stream.Aggregate(stream.GroupByKey(orders, stream.String(), stream.JSON[Order]()), "totals",
		func() Totals { return Totals{} },
		func(_ string, o Order, acc Totals) Totals {
			return Totals{Count: acc.Count + 1, Total: acc.Total + o.Amount}
		},
		stream.JSON[Totals]())
	totals.ToStream().To("order-totals", stream.String(), stream.JSON[Totals]())
	return t
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ordertotals:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	appID := flag.String("app-id", "ordertotals", "application id: consumer group and internal topic prefix")
	exactlyOnce := flag.Bool("exactly-once", false, "write outputs, state and offsets in one transaction per commit (the brokers must support transactions)")
	standbys := flag.Int("standbys", 0, "warm standby replicas per task (only 0 is supported yet)")
	stateDir := flag.String("state-dir", "", "directory for the local state (default: the system temp dir)")
	instanceID := flag.String("instance-id", "", "static group member id (KIP-345): a restart takes its partitions back at once")
	sessionTimeout := flag.Duration("session-timeout", 0, "group session timeout (default: the client's 45s)")
	commitInterval := flag.Duration("commit-interval", time.Second, "how often to commit (bounds what a crash replays)")
	describe := flag.Bool("describe", false, "print the topology and exit")
	flag.Parse()

	top := Topology()
	if *describe {
		fmt.Print(top.Describe())
		return nil
	}
	if *standbys != 0 {
		return fmt.Errorf("--standbys %d: standby replicas are not implemented yet; only 0 is supported", *standbys)
	}
	seeds := strings.Split(*brokers, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := createTopics(ctx, seeds); err != nil {
		return err
	}
	app, err := stream.New(top, stream.Config{
		Brokers: seeds, AppID: *appID, StateDir: *stateDir, CommitInterval: *commitInterval,
		InstanceID: *instanceID, SessionTimeout: *sessionTimeout, ExactlyOnce: *exactlyOnce,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	if err := app.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// createTopics creates "orders" and the compacted "order-totals", 6 partitions each, unless
// they exist.
func createTopics(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := stream.EnsureTopic(ctx, adm, "orders", 6, nil); err != nil {
		return err
	}
	return stream.EnsureTopic(ctx, adm, "order-totals", 6, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
}
