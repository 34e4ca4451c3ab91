package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFetchRecordBytesGoBySendfile consumes a topic over TCP and checks, with the broker's
// own counters, that every record byte of every Fetch response left through sendfile and
// none was copied through user space.
func TestFetchRecordBytesGoBySendfile(t *testing.T) {
	br, _ := startBroker(t, t.TempDir())
	ctx := testContext(t)
	prod := client(t, br, kgo.DefaultProduceTopic("zc"), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	createTopic(t, prod, "zc", 3, nil)
	value := []byte(strings.Repeat("z", 1000))
	const records = 3000
	for range records {
		prod.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons := client(t, br, kgo.ConsumeTopics("zc"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got, valueBytes := 0, 0
	for got < records {
		fetches := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, records, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			valueBytes += len(r.Value)
		})
	}
	cons.Close()
	sent := testutil.ToFloat64(br.metrics.fetchSent.sendfile)
	copied := testutil.ToFloat64(br.metrics.fetchSent.copied)
	out := testutil.ToFloat64(br.metrics.bytesOut.WithLabelValues("zc"))
	if copied != 0 {
		t.Fatalf("%v record bytes were copied through user space", copied)
	}
	// Every consumed byte came through sendfile; the rest is batch and record framing.
	if sent < float64(valueBytes) || sent > 1.2*float64(valueBytes) {
		t.Fatalf("sendfile sent %v bytes for %d value bytes consumed (fetches answered with %v record bytes)", sent, valueBytes, out)
	}
	if sent > out {
		t.Fatalf("sendfile sent %v bytes, more than the %v record bytes fetches answered with", sent, out)
	}
}
