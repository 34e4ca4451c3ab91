package stream

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are an App's Prometheus series, labelled with the application id; the program
// exposes them by passing its registry as Config.Metrics.
type metrics struct {
	processed *prometheus.CounterVec // by task
	badRecord *prometheus.CounterVec // by task
	restored  *prometheus.CounterVec // by store
	commits   prometheus.Histogram
	tasks     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, appID string) (*metrics, error) {
	labels := prometheus.Labels{"app": appID}
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_stream_records_processed_total",
			Help: "Input records processed, by task.", ConstLabels: labels}, []string{"task"}),
		badRecord: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_stream_bad_records_total",
			Help: "Input records that did not decode and were skipped or dead-lettered, by task.", ConstLabels: labels}, []string{"task"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_stream_restored_records_total",
			Help: "Changelog records applied while restoring, by store.", ConstLabels: labels}, []string{"store"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strand_stream_commit_seconds",
			Help:        "Time to commit: flush outputs and changelogs, write state, commit offsets.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strand_stream_tasks",
			Help: "Tasks this instance runs.", ConstLabels: labels}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.processed, m.badRecord, m.restored, m.commits, m.tasks} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observeCommit(started time.Time) {
	if m != nil {
		m.commits.Observe(time.Since(started).Seconds())
	}
}
