package journal

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/record"
	"golang.org/x/sys/unix"
)

// benchBatch is one batch of about size bytes holding records of ~1 KiB.
func benchBatch(b *testing.B, size int) []byte {
	b.Helper()
	n := max(1, size/1024)
	recs := make([]record.Record, n)
	value := []byte(strings.Repeat("v", 1024-30))
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: value}
	}
	raw, err := record.Build(record.Header{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, BaseSequence: -1}, recs, record.CodecNone)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkAppend compares the journal with a reference that writes the same bytes with
// File.Write (and fdatasync per batch for the durable case) in the same run. Durable
// journal runs use 8 concurrent appenders, which group commit lets share fsyncs; the
// reference is one writer, since a file has one end.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1KiB", 1024}, {"1MiB", 1 << 20}} {
		for _, policy := range []FsyncPolicy{FsyncAlways, FsyncNever} {
			prefix := size.name + "/fsync=" + policy.String()
			b.Run(prefix+"/journal", func(b *testing.B) {
				raw := benchBatch(b, size.bytes)
				cfg := quietConfig()
				cfg.Fsync = policy
				l := openLog(b, b.TempDir(), cfg)
				defer l.Close()
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				b.SetParallelism(4) // 8 appenders on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					mine := append([]byte(nil), raw...)
					for pb.Next() {
						if _, err := l.Append(context.Background(), mine, AppendOptions{}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)*float64(max(1, size.bytes/1024))/b.Elapsed().Seconds(), "records/s")
			})
			b.Run(prefix+"/reference", func(b *testing.B) {
				raw := benchBatch(b, size.bytes)
				f, err := os.Create(filepath.Join(b.TempDir(), "ref"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				b.SetBytes(int64(len(raw)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := f.Write(raw); err != nil {
						b.Fatal(err)
					}
					if policy == FsyncAlways {
						if err := unix.Fdatasync(int(f.Fd())); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)*float64(max(1, size.bytes/1024))/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkRead reads 1 MiB at a time sequentially from a 64 MiB log in page cache, next to
// a reference of plain ReadAt calls over the same file.
func BenchmarkRead(b *testing.B) {
	cfg := quietConfig()
	cfg.Fsync = FsyncNever
	dir := b.TempDir()
	l := openLog(b, dir, cfg)
	defer l.Close()
	raw := benchBatch(b, 16<<10)
	for l.Size() < 64<<20 {
		if _, err := l.Append(context.Background(), append([]byte(nil), raw...), AppendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	b.Run("journal", func(b *testing.B) {
		b.SetBytes(1 << 20)
		off := int64(0)
		for i := 0; i < b.N; i++ {
			res, err := l.ReadBytes(off, 1<<20, end, true)
			if err != nil {
				b.Fatal(err)
			}
			h, _ := record.ParseHeader(res[len(res)-len(raw):])
			off = h.NextOffset()
			if off >= end {
				off = 0
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		f, _ := os.Open(filepath.Join(dir, segmentName(0, ".log")))
		defer f.Close()
		buf := make([]byte, 1<<20)
		b.SetBytes(1 << 20)
		pos := int64(0)
		for i := 0; i < b.N; i++ {
			out := make([]byte, 1<<20) // the journal's ReadBytes allocates its result too
			if _, err := f.ReadAt(buf, pos); err != nil {
				b.Fatal(err)
			}
			copy(out, buf)
			pos = (pos + 1<<20) % (63 << 20)
		}
	})
}

// BenchmarkIndexLookup reads one batch at a random offset from segments of 1 MiB and 1 GiB:
// with a sparse index and binary search the time should stay flat as the segment grows.
func BenchmarkIndexLookup(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int64
	}{{"segment=1MiB", 1 << 20}, {"segment=1GiB", 1 << 30}} {
		b.Run(size.name, func(b *testing.B) {
			cfg := quietConfig()
			cfg.Fsync = FsyncNever
			l := openLog(b, b.TempDir(), cfg)
			defer l.Close()
			raw := benchBatch(b, 4096)
			for l.Size() < size.bytes {
				if _, err := l.AppendNoWait(raw, AppendOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			end := l.LogEndOffset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Read(rand.Int64N(end), 1, end, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
