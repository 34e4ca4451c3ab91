package journal

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/strand-data/strand/internal/record"
)

// BenchmarkClean measures cleaning throughput in bytes of dirty log per second: a 32 MiB
// log of updates over 10,000 keys (batches of 50 records of ~100 bytes) is compacted in one
// pass: key map, then rewrite (decode, filter, re-encode with the batch's codec, fsync, swap). Run it next to BenchmarkRead (the journal's raw read throughput) in one invocation:
//
//	go test ./internal/journal/ -run '^$' -bench 'BenchmarkClean|BenchmarkRead/journal' -count=3
func BenchmarkClean(b *testing.B) {
	for _, codec := range []record.Codec{record.CodecNone, record.CodecLZ4} {
		b.Run("codec="+codec.String(), func(b *testing.B) {
			template := b.TempDir()
			cfg := cleanConfig(nil, 8<<20)
			l := openLog(b, template, cfg)
			rng := rand.New(rand.NewPCG(1, 1))
			for n := 0; l.Size() < 32<<20; n++ {
				ups := make([]update, 50)
				for i := range ups {
					// Hex digits: values compress about 2:1, like typical JSON payloads.
					value := fmt.Sprintf("%016x%016x%016x%016x%016x%010x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()>>24)
					ups[i] = update{key: []byte(fmt.Sprintf("key-%05d", rng.IntN(10000))), value: []byte(value)}
				}
				mustAppend(b, l, buildUpdates(b, ups, 1, codec))
			}
			l.Close()
			c := NewCleaner(CleanerConfig{DedupeBufferSize: 16 << 20})
			var dirty, records int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "log")
				copyDir(b, template, dir)
				l := openLog(b, dir, cfg)
				b.StartTimer()
				st, err := c.Clean(context.Background(), l, Compaction{Force: true})
				if err != nil || !st.Cleaned {
					b.Fatalf("%+v %v", st, err)
				}
				b.StopTimer()
				dirty = st.DirtyBytes
				records = l.LogEndOffset()
				l.Close()
				b.StartTimer()
			}
			b.SetBytes(dirty)
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func copyDir(b *testing.B, from, to string) {
	b.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		b.Fatal(err)
	}
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			b.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}
