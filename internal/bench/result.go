package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Result is what a workload measured. Rates are over the measured interval: from the
// first record sent (or, for Consume, from the first fetch) to the last one accounted for.
type Result struct {
	Mode       Mode    `json:"mode"`
	Topic      string  `json:"topic"`
	Partitions int32   `json:"partitions"`
	RecordSize int     `json:"record_size"`
	Seconds    float64 `json:"seconds"`
	// Records and Bytes are acknowledged records for Produce, consumed records for Consume
	// and E2E. Bytes count keys and values, not protocol overhead.
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Sent          int64   `json:"sent,omitempty"`  // records handed to the producers
	Acked         int64   `json:"acked,omitempty"` // records acknowledged (E2E: by the producers)
	Errors        int64   `json:"errors"`          // records that failed to produce
	FirstError    string  `json:"first_error,omitempty"`
	RecordsPerSec float64 `json:"records_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"` // 10^6 bytes
	OfferedRate   float64 `json:"offered_rate,omitempty"`
	// Latency is send-to-acknowledgement for Produce and timestamp-to-consumption for E2E;
	// a pure Consume has none. AckLatency is the producers' latency during an E2E run.
	Latency    *Percentiles `json:"latency,omitempty"`
	AckLatency *Percentiles `json:"ack_latency,omitempty"`
	// Transactions and EndTxnLatency: with --transaction-records, the transactions
	// committed and how long each EndTxn (commit) took, its records already acknowledged.
	Transactions  int64        `json:"transactions,omitempty"`
	EndTxnLatency *Percentiles `json:"end_txn_latency,omitempty"`
	// Breakdown (E2E) is where a record batch's time went, stage by stage: the client's
	// produce round trip (which holds the server's append, fsync and replicate stages),
	// the server's stages from its /metrics, and the consumer's handoff.
	Breakdown     []Stage `json:"breakdown,omitempty"`
	BreakdownNote string  `json:"breakdown_note,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s on %s (%d partitions, %d-byte records)\n", r.Mode, r.Topic, r.Partitions, r.RecordSize)
	fmt.Fprintf(tw, "records\t%d in %.2fs", r.Records, r.Seconds)
	if r.Errors > 0 {
		fmt.Fprintf(tw, ", %d failed (first: %s)", r.Errors, r.FirstError)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "throughput\t%.0f records/s, %.2f MB/s\n", r.RecordsPerSec, r.MBPerSec)
	if r.OfferedRate > 0 {
		fmt.Fprintf(tw, "offered load\t%.0f records/s\n", r.OfferedRate)
	}
	row := func(name string, p *Percentiles) {
		if p == nil {
			return
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, strings.Join([]string{
			fmt.Sprintf("p50 %.3f", p.P50), fmt.Sprintf("p95 %.3f", p.P95), fmt.Sprintf("p99 %.3f", p.P99),
			fmt.Sprintf("p99.9 %.3f", p.P999), fmt.Sprintf("max %.3f ms", p.Max),
		}, "  "))
	}
	switch r.Mode {
	case E2E:
		row("e2e latency", r.Latency)
		row("ack latency", r.AckLatency)
	default:
		row("latency", r.Latency)
	}
	if r.Transactions > 0 {
		fmt.Fprintf(tw, "transactions\t%d committed\n", r.Transactions)
		row("EndTxn latency", r.EndTxnLatency)
	}
	if len(r.Breakdown) > 0 {
		fmt.Fprintf(tw, "breakdown\tp50 / p99 / p99.9 ms (count)\n")
		for _, s := range r.Breakdown {
			fmt.Fprintf(tw, "  %s: %s\t%.3f / %.3f / %.3f (%d)\n", s.Where, s.Name, s.P50, s.P99, s.P999, s.Count)
		}
	}
	if r.BreakdownNote != "" {
		fmt.Fprintf(tw, "\t(%s)\n", r.BreakdownNote)
	}
	return tw.Flush()
}
