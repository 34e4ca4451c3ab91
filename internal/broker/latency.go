package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyMetrics are the server's spans of a record batch's way from producer to consumer,
// as histograms, so `strand bench e2e` (and an operator) can see where the time goes:
//
//	produce request received → appended → fsynced → high watermark advanced → fetch answered
//
// Each span is observed once per partition of a request, when it ends.
type latencyMetrics struct {
	stage *prometheus.HistogramVec // strand_produce_stage_seconds{stage}
	fsync prometheus.Histogram     // strand_log_fsync_seconds
	fetch prometheus.Histogram     // strand_fetch_answer_delay_seconds
}

// Produce stages, the label values of strand_produce_stage_seconds.
const (
	stageAppend    = "append"    // request frame read → batches appended to the log
	stageFsync     = "fsync"     // appended → on disk (the group commit's wait and fsync)
	stageReplicate = "replicate" // on disk here → high watermark past the batch (ISR copies)
)

// latencyBuckets go from 50 µs to 5 s in 33 exponential steps (about ×1.43 each): fine
// enough to read a p99 of a few milliseconds within 20%.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 5, 33)

func newLatencyMetrics(reg prometheus.Registerer) *latencyMetrics {
	m := &latencyMetrics{
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strand_produce_stage_seconds",
			Help:    "Time a partition's produced batches spend in each stage on the leader: append (request read to appended), fsync (appended to on disk), replicate (on disk to high watermark past them).",
			Buckets: latencyBuckets}, []string{"stage"}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strand_log_fsync_seconds",
			Help: "Duration of each fsync of a partition's active segment (one group commit).", Buckets: latencyBuckets}),
		fetch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strand_fetch_answer_delay_seconds",
			Help:    "For consumer fetches that return records, time from the high watermark passing the first record returned to the answer being ready.",
			Buckets: latencyBuckets}),
	}
	reg.MustRegister(m.stage, m.fsync, m.fetch)
	return m
}

func (m *latencyMetrics) observeStage(stage string, d time.Duration) {
	if m != nil {
		m.stage.WithLabelValues(stage).Observe(d.Seconds())
	}
}

func (m *latencyMetrics) observeFsync(d time.Duration) {
	if m != nil {
		m.fsync.Observe(d.Seconds())
	}
}

func (m *latencyMetrics) observeFetchDelay(d time.Duration) {
	if m != nil && d >= 0 {
		m.fetch.Observe(d.Seconds())
	}
}
