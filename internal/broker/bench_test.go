package broker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

const benchRecordSize = 1024

// BenchmarkProduce measures franz-go producing 1 KiB records to 6 partitions over loopback
// with acks=all and fsync=always, next to the journal appending the same bytes in 16 KiB
// batches directly (the reference, measured in the same run).
func BenchmarkProduce(b *testing.B) {
	value := []byte(strings.Repeat("x", benchRecordSize))
	b.Run("franz-go/acks=all", func(b *testing.B) {
		br, _ := startBroker(b, b.TempDir())
		cl := client(b, br, kgo.DefaultProduceTopic("bench"), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20))
		createTopic(b, cl, "bench", 6, nil)
		ctx := context.Background()
		b.SetBytes(benchRecordSize)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("journal-reference", func(b *testing.B) {
		cfg := journal.DefaultConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		l, err := journal.Open(b.TempDir(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		recs := make([]record.Record, 16)
		for i := range recs {
			recs[i] = record.Record{OffsetDelta: int32(i), Value: value}
		}
		batch, _ := record.Build(record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, BaseSequence: -1}, recs, record.CodecNone)
		b.SetBytes(benchRecordSize)
		b.ResetTimer()
		for i := 0; i < b.N; i += 16 {
			if _, err := l.Append(context.Background(), batch, journal.AppendOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkConsume measures franz-go reading 1 KiB records from page cache over loopback.
func BenchmarkConsume(b *testing.B) {
	br, _ := startBroker(b, b.TempDir())
	prod := client(b, br, kgo.DefaultProduceTopic("cbench"), kgo.ProducerLinger(time.Millisecond))
	createTopic(b, prod, "cbench", 6, nil)
	value := []byte(strings.Repeat("y", benchRecordSize))
	const total = 200_000
	ctx := context.Background()
	for i := 0; i < total; i++ {
		prod.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchRecordSize)
	b.ResetTimer()
	read := 0
	for read < b.N {
		cl := client(b, br, kgo.ConsumeTopics("cbench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
		got := 0
		for got < total && read < b.N {
			f := cl.PollFetches(ctx)
			got += f.NumRecords()
			read += f.NumRecords()
		}
		cl.Close()
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}
