package broker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"golang.org/x/sys/unix"
)

const benchRecordSize = 1024

// BenchmarkProduce measures franz-go producing 1 KiB records to 6 partitions over loopback
// with acks=all and fsync=always, next to the disk's own bandwidth with fsync (1 MiB
// written and fdatasynced at a time), measured in the same run.
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
	// The disk's bandwidth with fsync: 1 MiB written and fdatasynced at a time.
	b.Run("disk-reference", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "ref"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		chunk := make([]byte, 1<<20)
		b.SetBytes(benchRecordSize)
		b.ResetTimer()
		for written := 0; written < b.N*benchRecordSize; written += len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
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

// BenchmarkLoopbackReference is the loopback TCP bandwidth: the reference for consuming.
func BenchmarkLoopbackReference(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 1<<20)
	b.SetBytes(benchRecordSize)
	b.ResetTimer()
	for sent := 0; sent < b.N*benchRecordSize; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
