package journal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/strand-data/strand/internal/record"
)

// quietConfig is the default config with small segments and logs discarded.
func quietConfig() Config {
	c := DefaultConfig()
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// batch builds one batch of n records whose values say which batch and record they are.
func batch(t testing.TB, id, n int, ts int64) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte(fmt.Sprintf("k%d", i)),
			Value: []byte(fmt.Sprintf("batch-%d-record-%d", id, i))}
	}
	b, err := record.Build(record.Header{BaseTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idemBatch is a batch from an idempotent producer.
func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte{byte(seq), byte(i)}}
	}
	b, err := record.Build(record.Header{BaseTimestamp: 1, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(context.Background(), b, AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readAll reads every batch from offset to the end and returns their headers and values.
func readAll(t testing.TB, l *Log, from int64) ([]record.Header, []string) {
	t.Helper()
	b, err := l.ReadBytes(from, 1<<40, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := record.Split(b)
	if err != nil {
		t.Fatalf("read back corrupt bytes: %v", err)
	}
	var hs []record.Header
	var vals []string
	for _, p := range parts {
		h, _ := record.ParseHeader(p)
		hs = append(hs, h)
		recs, err := record.Records(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			vals = append(vals, string(r.Value))
		}
	}
	return hs, vals
}

func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
