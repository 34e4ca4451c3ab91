// Command pageviews counts page views per region and minute: it joins topic "pageviews"
// (key: user id; value JSON {"page": "..."}) with the table of users in the compacted topic
// "users" (key: user id; value JSON {"region": "..."}), re-keys the views by region through
// the repartition topic "<app-id>-by-region-repartition", and writes one record per region
// and minute, once the minute (plus 10 s of grace) is over, to "pageviews-per-region"
// (key: region; value JSON {"region", "start", "end", "views"}). A region whose views stop
// still gets its last minute: the window clock follows the wall clock after 30 s of quiet.
//
//	go run ./examples/pageviews --brokers 127.0.0.1:9092
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

// View is a record of "pageviews".
type View struct {
	Page string `json:"page"`
}

// User is a record of "users".
type User struct {
	Region string `json:"region"`
}

// RegionMinute is a record of "pageviews-per-region".
type RegionMinute struct {
	Region string    `json:"region"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Views  int64     `json:"views"`
}

// Topology builds the job.
func Topology() *stream.Topology {
	t := stream.NewTopology()
	users := stream.TableFrom(t, "users", "users", stream.String(), stream.JSON[User]())
	views := stream.From(t, stream.String(), stream.JSON[View](), "pageviews")
	regions := stream.LeftJoinTable(views, users, func(_ string, _ View, u User, found bool) string {
		if !found || u.Region == "" {
			return "unknown"
		}
		return u.Region
	})
	byRegion := stream.GroupBy(regions, "by-region", func(_ string, region string) string { return region }, stream.String(), stream.String())
	minutes := stream.Tumbling(time.Minute).Grace(10 * time.Second).EmitFinal().AdvanceWhenIdle(30 * time.Second)
	counts := stream.WindowedCount(stream.WindowedBy(byRegion, minutes), "views-per-region")
	out := stream.Map(counts.ToStream(), func(w stream.Windowed[string], n int64) (string, RegionMinute) {
		return w.Key, RegionMinute{Region: w.Key, Start: w.Start, End: w.End, Views: n}
	})
	out.To("pageviews-per-region", stream.String(), stream.JSON[RegionMinute]())
	return t
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pageviews:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	appID := flag.String("app-id", "pageviews", "application id: consumer group and internal topic prefix")
	stateDir := flag.String("state-dir", "", "directory for the local state (default: the system temp dir)")
	flag.Parse()
	seeds := strings.Split(*brokers, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	compact := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	// pageviews and users are joined, so they get the same partition count.
	err = stream.EnsureTopic(ctx, adm, "pageviews", 6, nil)
	if err == nil {
		err = stream.EnsureTopic(ctx, adm, "users", 6, compact)
	}
	if err == nil {
		err = stream.EnsureTopic(ctx, adm, "pageviews-per-region", 6, nil)
	}
	cl.Close()
	if err != nil {
		return err
	}
	app, err := stream.New(Topology(), stream.Config{Brokers: seeds, AppID: *appID, StateDir: *stateDir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	if err := app.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
