package kafka

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metrics are the wire's Prometheus metrics.
type Metrics struct {
	latency     *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	connections prometheus.Gauge
	badFrames   *prometheus.CounterVec
}

// NewMetrics registers the wire's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strand_request_duration_seconds", Help: "Time from a request frame read to its response written, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"api"}),
		requests:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_requests_total", Help: "Requests answered, by API and version."}, []string{"api", "version"}),
		bytesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_network_bytes_received_total", Help: "Request bytes read from clients."}),
		bytesOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_network_bytes_sent_total", Help: "Response bytes written to clients."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strand_connections", Help: "Open Kafka connections."}),
		badFrames:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_bad_frames_total", Help: "Connections closed on malformed input, by reason."}, []string{"reason"}),
	}
	reg.MustRegister(m.latency, m.requests, m.bytesIn, m.bytesOut, m.connections, m.badFrames)
	return m
}

func (m *Metrics) observe(key, version int16, d time.Duration, n int) {
	api := kmsg.NameForKey(key)
	m.latency.WithLabelValues(api).Observe(d.Seconds())
	m.requests.WithLabelValues(api, strconv.Itoa(int(version))).Inc()
	m.bytesOut.Add(float64(n))
}
