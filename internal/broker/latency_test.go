package broker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// histogramCount reads how many observations a histogram holds.
func histogramCount(t *testing.T, h prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestLatencySpansAreObserved: a produce with acks=all and a consumer's long-polling fetch
// leave one observation in every span of the breakdown `strand bench e2e` prints, and a
// fsync timing for each group commit.
func TestLatencySpansAreObserved(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "spans", 1, nil)
	consumer := client(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"spans": {0: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(5*time.Second))
	polled := make(chan int, 1)
	go func() {
		fs := consumer.PollFetches(testContext(t))
		polled <- fs.NumRecords()
	}()

	if err := cl.ProduceSync(testContext(t), &kgo.Record{Topic: "spans", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-polled:
		if n != 1 {
			t.Fatalf("consumed %d records, want 1", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consumer got nothing in 30s")
	}
	m := b.metrics.latency
	for _, stage := range []string{stageAppend, stageFsync, stageReplicate} {
		if n := histogramCount(t, m.stage.WithLabelValues(stage)); n == 0 {
			t.Errorf("stage %s: no observation", stage)
		}
	}
	if n := histogramCount(t, m.fsync); n == 0 {
		t.Error("no fsync observed")
	}
	if n := histogramCount(t, m.fetch); n == 0 {
		t.Error("the consumer's fetch answer after the commit was not observed")
	}
}
