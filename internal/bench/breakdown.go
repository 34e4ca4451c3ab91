package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Stage is one span of a record batch's way from producer to consumer, in milliseconds.
// Server stages are read from the brokers' /metrics histograms (their bucket bounds limit
// the precision to about 20%); client stages are measured by the bench's own clients.
type Stage struct {
	Name  string  `json:"name"`
	Where string  `json:"where"` // client or server
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
}

// The server's spans, in the order a batch passes them: each is a histogram on /metrics
// (internal/broker/latency.go), with a label selecting the stage where there is one.
var serverStages = []struct {
	name, metric, stage string
}{
	{"request read → appended", "strand_produce_stage_seconds", "append"},
	{"appended → fsynced", "strand_produce_stage_seconds", "fsync"},
	{"fsynced → high watermark past it", "strand_produce_stage_seconds", "replicate"},
	{"committed → fetch answered", "strand_fetch_answer_delay_seconds", ""},
	{"(each fsync)", "strand_log_fsync_seconds", ""},
}

// clientSpans measures what only the clients see: a produce request's round trip, and
// how long a fetched record waits in the consumer's buffer before the bench polls it.
type clientSpans struct {
	roundTrip *latencies // produce request written → its answer read
	handoff   *latencies // record buffered from a fetch answer → polled

	mu       sync.Mutex
	buffered map[*kgo.Record]time.Time
}

func newClientSpans() *clientSpans {
	return &clientSpans{roundTrip: newLatencies(), handoff: newLatencies(), buffered: map[*kgo.Record]time.Time{}}
}

// producerHook and consumerHook are the kgo hooks that feed the spans.
type producerHook struct{ s *clientSpans }

func (h producerHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == int16(kmsg.Produce) && e2e.Err() == nil {
		h.s.roundTrip.record(e2e.DurationE2E())
	}
}

type consumerHook struct{ s *clientSpans }

func (h consumerHook) OnFetchRecordBuffered(r *kgo.Record) {
	h.s.mu.Lock()
	h.s.buffered[r] = time.Now()
	h.s.mu.Unlock()
}

func (h consumerHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	h.s.mu.Lock()
	at, ok := h.s.buffered[r]
	delete(h.s.buffered, r)
	h.s.mu.Unlock()
	if ok && polled {
		h.s.handoff.record(time.Since(at))
	}
}

func (s *clientSpans) producerOpts() []kgo.Opt {
	if s == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(producerHook{s})}
}

func (s *clientSpans) consumerOpts() []kgo.Opt {
	if s == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(consumerHook{s})}
}

func clientStage(name string, l *latencies) Stage {
	p := l.percentiles()
	return Stage{Name: name, Where: "client", Count: p.Count, P50: p.P50, P99: p.P99, P999: p.P999}
}

// metricsSnapshot is the server histograms of every broker, summed, at one moment.
type metricsSnapshot map[string]*dto.Histogram // key: metric name + "/" + stage label

// scrapeHistograms reads the server stages' histograms from each broker's /metrics.
func scrapeHistograms(ctx context.Context, addrs []string) (metricsSnapshot, error) {
	snap := metricsSnapshot{}
	for _, addr := range addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", addr, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", addr, err)
		}
		for _, st := range serverStages {
			f := families[st.metric]
			if f == nil {
				continue
			}
			for _, m := range f.GetMetric() {
				if st.stage != "" && labelValue(m, "stage") != st.stage {
					continue
				}
				snap.add(st.metric+"/"+st.stage, m.GetHistogram())
			}
		}
	}
	return snap, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// add sums h into the snapshot (histograms of several brokers share their buckets).
func (s metricsSnapshot) add(key string, h *dto.Histogram) {
	if h == nil {
		return
	}
	cur := s[key]
	if cur == nil {
		cur = &dto.Histogram{SampleCount: new(uint64)}
		for _, b := range h.GetBucket() {
			cur.Bucket = append(cur.Bucket, &dto.Bucket{UpperBound: ptr(b.GetUpperBound()), CumulativeCount: new(uint64)})
		}
		s[key] = cur
	}
	*cur.SampleCount += h.GetSampleCount()
	for i, b := range h.GetBucket() {
		if i < len(cur.Bucket) {
			*cur.Bucket[i].CumulativeCount += b.GetCumulativeCount()
		}
	}
}

func ptr[T any](v T) *T { return &v }

// since is what the histograms gained between before and s: the run's own observations.
func (s metricsSnapshot) since(before metricsSnapshot) metricsSnapshot {
	out := metricsSnapshot{}
	for key, h := range s {
		d := &dto.Histogram{SampleCount: ptr(h.GetSampleCount())}
		b := before[key]
		if b != nil {
			*d.SampleCount -= b.GetSampleCount()
		}
		for i, bk := range h.GetBucket() {
			n := bk.GetCumulativeCount()
			if b != nil && i < len(b.GetBucket()) {
				n -= b.GetBucket()[i].GetCumulativeCount()
			}
			d.Bucket = append(d.Bucket, &dto.Bucket{UpperBound: ptr(bk.GetUpperBound()), CumulativeCount: ptr(n)})
		}
		out[key] = d
	}
	return out
}

// quantile estimates the q-quantile (0..1) of a cumulative-bucket histogram, in seconds,
// interpolating linearly inside the bucket that holds it, as Prometheus's
// histogram_quantile does. Observations above the last bound are reported at that bound.
func quantile(h *dto.Histogram, q float64) float64 {
	total := h.GetSampleCount()
	if total == 0 {
		return math.NaN()
	}
	buckets := append([]*dto.Bucket(nil), h.GetBucket()...)
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].GetUpperBound() < buckets[j].GetUpperBound() })
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for _, b := range buckets {
		n := b.GetCumulativeCount()
		if float64(n) >= rank && n > below {
			upper := b.GetUpperBound()
			return lower + (upper-lower)*(rank-float64(below))/float64(n-below)
		}
		lower, below = b.GetUpperBound(), n
	}
	return lower
}

// serverBreakdown turns the run's histogram gains into stages.
func serverBreakdown(run metricsSnapshot) []Stage {
	var out []Stage
	for _, st := range serverStages {
		h := run[st.metric+"/"+st.stage]
		if h == nil || h.GetSampleCount() == 0 {
			continue
		}
		ms := func(q float64) float64 { return quantile(h, q) * 1000 }
		out = append(out, Stage{Name: st.name, Where: "server", Count: int64(h.GetSampleCount()),
			P50: ms(0.5), P99: ms(0.99), P999: ms(0.999)})
	}
	return out
}
