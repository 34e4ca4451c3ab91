// Command wordcount counts words: it reads lines from topic "text" and keeps, per
// lower-cased word, the number of times it was seen in the compacted topic "word-counts"
// (key: the word; value: the count as 8 big-endian bytes, Java's LongSerializer, so Kafka
// Streams' WordCountDemo readers work unchanged).
//
//	go run ./examples/wordcount --brokers 127.0.0.1:9092
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
	"unicode"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/stream"
)

// Topology splits lines into words, repartitions by word through
// "<app-id>-words-repartition" and counts them in the store "counts".
func Topology() *stream.Topology {
	t := stream.NewTopology()
	lines := stream.From(t, stream.Bytes(), stream.String(), "text")
	words := stream.FlatMap(lines, func(_ []byte, line string) []stream.KeyValue[string, string] {
		var out []stream.KeyValue[string, string]
		for _, w := range strings.FieldsFunc(strings.ToLower(line), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			out = append(out, stream.KeyValue[string, string]{Key: w, Value: w})
		}
		return out
	})
	byWord := stream.GroupBy(words, "words", func(w, _ string) string { return w }, stream.String(), stream.String())
	stream.Count(byWord, "counts").ToStream().To("word-counts", stream.String(), stream.Int64())
	return t
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	appID := flag.String("app-id", "wordcount", "application id: consumer group and internal topic prefix")
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
	err = stream.EnsureTopic(ctx, adm, "text", 6, nil)
	if err == nil {
		err = stream.EnsureTopic(ctx, adm, "word-counts", 6, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
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
