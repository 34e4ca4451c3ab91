package bench

import (
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func histogram(bounds []float64, cumulative []uint64) *dto.Histogram {
	h := &dto.Histogram{SampleCount: ptr(cumulative[len(cumulative)-1])}
	for i, b := range bounds {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(b), CumulativeCount: ptr(cumulative[i])})
	}
	return h
}

func TestQuantileInterpolatesInsideTheBucket(t *testing.T) {
	// 100 observations: 50 in (0, 1], 40 in (1, 2], 10 in (2, 4].
	h := histogram([]float64{1, 2, 4}, []uint64{50, 90, 100})
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 1},    // the 50th observation is the top of the first bucket
		{0.7, 1.5},  // 20 of the second bucket's 40
		{0.99, 3.8}, // 9 of the last bucket's 10, over a width of 2
		{0.25, 0.5},
	} {
		if got := quantile(h, tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(histogram([]float64{1}, []uint64{0}), 0.5); !math.IsNaN(got) {
		t.Errorf("quantile of an empty histogram = %v, want NaN", got)
	}
}

func TestSnapshotSinceKeepsOnlyTheRunsObservations(t *testing.T) {
	key := "strand_produce_stage_seconds/fsync"
	before, after := metricsSnapshot{}, metricsSnapshot{}
	before.add(key, histogram([]float64{0.001, 0.01}, []uint64{1000, 1000}))
	// Two brokers' histograms are summed; the run added 90 fast and 10 slow observations.
	after.add(key, histogram([]float64{0.001, 0.01}, []uint64{1050, 1055}))
	after.add(key, histogram([]float64{0.001, 0.01}, []uint64{40, 45}))
	run := after.since(before)
	h := run[key]
	if h.GetSampleCount() != 100 || h.GetBucket()[0].GetCumulativeCount() != 90 {
		t.Fatalf("run histogram: %d samples, %d in the first bucket; want 100 and 90", h.GetSampleCount(), h.GetBucket()[0].GetCumulativeCount())
	}
	stages := serverBreakdown(run)
	if len(stages) != 1 || stages[0].Name != "appended → fsynced" || stages[0].Count != 100 {
		t.Fatalf("breakdown %+v", stages)
	}
	// The p99 lies in the slow bucket, (1 ms, 10 ms].
	if p99 := stages[0].P99; p99 <= 1 || p99 > 10 {
		t.Fatalf("p99 %.3f ms, want within (1, 10]", p99)
	}
}

// TestE2EBreakdownReadsTheServersSpans: with the broker's HTTP address, an e2e run reports
// every span of a batch's way, client and server, each with observations.
func TestE2EBreakdownReadsTheServersSpans(t *testing.T) {
	addr, httpAddr := startBrokerHTTP(t)
	cfg := testConfig(addr, "spans")
	cfg.Records, cfg.Rate, cfg.MetricsAddrs = 1000, 5000, []string{httpAddr}
	res := runBench(t, E2E, cfg)
	got := map[string]Stage{}
	for _, s := range res.Breakdown {
		got[s.Where+": "+s.Name] = s
	}
	for _, want := range []string{
		"client: produce request round trip",
		"server: request read → appended",
		"server: appended → fsynced",
		"server: fsynced → high watermark past it",
		"server: committed → fetch answered",
		"server: (each fsync)",
		"client: fetched → polled by the consumer",
	} {
		s, ok := got[want]
		if !ok || s.Count == 0 || s.P50 < 0 || s.P99 < s.P50 || s.P999 < s.P99 {
			t.Errorf("%s: %+v (found %v)", want, s, ok)
		}
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil || !strings.Contains(table.String(), "appended → fsynced") {
		t.Errorf("table (%v):\n%s", err, table.String())
	}
	// Without the HTTP address the client spans remain and the table says why the rest is missing.
	cfg.MetricsAddrs, cfg.Records = nil, 200
	res = runBench(t, E2E, cfg)
	if res.BreakdownNote == "" || len(res.Breakdown) != 2 {
		t.Errorf("breakdown without --http: %+v, note %q", res.Breakdown, res.BreakdownNote)
	}
}
