package cluster

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The checks below are pure functions of a History. Each returns the anomalies it found,
// so a test can print them; a correct cluster yields none.

// Anomaly is one violation a check found.
type Anomaly struct {
	Partition int32
	Offset    int64
	Detail    string
}

func (a Anomaly) String() string {
	if a.Partition < 0 {
		return a.Detail // not about a position in the log
	}
	return fmt.Sprintf("p%d@%d: %s", a.Partition, a.Offset, a.Detail)
}

type position struct {
	partition int32
	offset    int64
}

// finalIndex maps each (partition, offset) of the final read to its value, and each value
// to the positions it was found at.
func finalIndex(final []Read) (map[position]string, map[string][]position) {
	at := make(map[position]string, len(final))
	where := make(map[string][]position, len(final))
	for _, r := range final {
		pos := position{r.Partition, r.Offset}
		if _, seen := at[pos]; !seen {
			where[r.Value] = append(where[r.Value], pos)
		}
		at[pos] = r.Value
	}
	return at, where
}

// LostAcked are the acknowledged writes whose value the final read never found.
func LostAcked(h *History) []Anomaly {
	_, where := finalIndex(h.Final)
	var out []Anomaly
	for _, p := range h.Produces {
		if p.Acked() && len(where[p.Value()]) == 0 {
			out = append(out, Anomaly{p.Partition, p.Offset, fmt.Sprintf("acknowledged %s is missing from the final read", p.Value())})
		}
	}
	return out
}

// Duplicates are values the final read found at more than one position: with an
// idempotent producer every record is stored once, however often it was retried.
func Duplicates(h *History) []Anomaly {
	_, where := finalIndex(h.Final)
	var out []Anomaly
	for v, ps := range where {
		if len(ps) < 2 {
			continue
		}
		for _, pos := range ps[1:] {
			out = append(out, Anomaly{pos.partition, pos.offset, fmt.Sprintf("%s stored again (first at p%d@%d)", v, ps[0].partition, ps[0].offset)})
		}
	}
	sortAnomalies(out)
	return out
}

// OutOfOrder are records the final read found, within one partition, with a producer's
// sequence lower than that of a record before them: a producer's records to a partition
// must be stored in the order it sent them. A second copy of a record is a duplicate, not
// counted here.
func OutOfOrder(h *History) []Anomaly {
	byPartition := map[int32][]Read{}
	for _, r := range h.Final {
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
	}
	var out []Anomaly
	for p, reads := range byPartition {
		slices.SortStableFunc(reads, func(a, b Read) int { return compareInt64(a.Offset, b.Offset) })
		last := map[int]int64{}
		seen := map[string]bool{}
		for _, r := range reads {
			producer, seq, ok := ParseValue(r.Value)
			if !ok || seen[r.Value] {
				continue
			}
			seen[r.Value] = true
			if prev, seen := last[producer]; seen && seq < prev {
				out = append(out, Anomaly{p, r.Offset, fmt.Sprintf("%s after p%d-s%d", r.Value, producer, prev)})
			}
			if prev, seen := last[producer]; !seen || seq > prev {
				last[producer] = seq
			}
		}
	}
	sortAnomalies(out)
	return out
}

// ReusedOffsets are offsets that held different records: an acknowledged offset where the
// final read found another record, an acknowledged record the final read found at another
// offset, or two different values at one position within the final read itself.
func ReusedOffsets(h *History) []Anomaly {
	var out []Anomaly
	at := map[position]string{}
	for _, r := range h.Final {
		pos := position{r.Partition, r.Offset}
		if v, seen := at[pos]; seen && v != r.Value {
			out = append(out, Anomaly{r.Partition, r.Offset, fmt.Sprintf("final read found both %s and %s", v, r.Value)})
			continue
		}
		at[pos] = r.Value
	}
	_, where := finalIndex(h.Final)
	for _, p := range h.Produces {
		if !p.Acked() {
			continue
		}
		pos := position{p.Partition, p.Offset}
		v := p.Value()
		if stored, ok := at[pos]; ok && stored != v {
			out = append(out, Anomaly{p.Partition, p.Offset, fmt.Sprintf("acknowledged %s here, final read found %s", v, stored)})
		} else if ps := where[v]; len(ps) > 0 && !slices.Contains(ps, pos) {
			out = append(out, Anomaly{p.Partition, p.Offset, fmt.Sprintf("acknowledged %s here, final read found it at p%d@%d", v, ps[0].partition, ps[0].offset)})
		}
	}
	sortAnomalies(out)
	return out
}

// DoubleAcks are positions at which the cluster acknowledged two different records: each
// offset holds one record, so at most one of them can be there. This needs no final read;
// it is the plainest form of an offset reused for different records.
func DoubleAcks(h *History) []Anomaly {
	first := map[position]string{}
	reported := map[position]bool{}
	var out []Anomaly
	for _, p := range h.Produces {
		if !p.Acked() {
			continue
		}
		pos := position{p.Partition, p.Offset}
		v, seen := first[pos]
		if !seen {
			first[pos] = p.Value()
			continue
		}
		if v != p.Value() && !reported[pos] {
			reported[pos] = true
			out = append(out, Anomaly{p.Partition, p.Offset, fmt.Sprintf("acknowledged both %s and %s here", v, p.Value())})
		}
	}
	sortAnomalies(out)
	return out
}

// StaleReads are records a consumer saw during the run at a position where the final read
// found nothing or something else: the consumer read past what was committed (above the
// high watermark that survived), and the value later disappeared or changed.
func StaleReads(h *History) []Anomaly {
	at, _ := finalIndex(h.Final)
	seen := map[position]bool{}
	var out []Anomaly
	for _, r := range h.Reads {
		pos := position{r.Partition, r.Offset}
		stored, ok := at[pos]
		if ok && stored == r.Value || seen[pos] {
			continue
		}
		seen[pos] = true
		if !ok {
			out = append(out, Anomaly{r.Partition, r.Offset, fmt.Sprintf("read %s at %s, gone from the final read (end %d)", r.Value, r.At.Format("15:04:05.000"), h.FinalEnds[r.Partition])})
		} else {
			out = append(out, Anomaly{r.Partition, r.Offset, fmt.Sprintf("read %s at %s, final read found %s", r.Value, r.At.Format("15:04:05.000"), stored)})
		}
	}
	sortAnomalies(out)
	return out
}

// SharedProducerIDs are producer ids the cluster gave to more than one producer: the
// broker then takes one producer's batches for another's retries (acknowledging them at
// the other's offsets without storing them) or for gaps in its sequence.
func SharedProducerIDs(h *History) []Anomaly {
	holders := map[int64]map[int]bool{}
	for _, p := range h.ProducerIDs {
		if holders[p.ID] == nil {
			holders[p.ID] = map[int]bool{}
		}
		holders[p.ID][p.Producer] = true
	}
	var out []Anomaly
	for id, ps := range holders {
		if len(ps) > 1 {
			var names []string
			for p := range ps {
				names = append(names, fmt.Sprintf("p%d", p))
			}
			slices.Sort(names)
			out = append(out, Anomaly{-1, id, fmt.Sprintf("producer id %d given to %s", id, strings.Join(names, " and "))})
		}
	}
	sortAnomalies(out)
	return out
}

// AckedBelowMinISR are writes begun during a fault that left fewer replicas up than
// min.insync.replicas and acknowledged before healing began: acks=all must refuse them
// (NOT_ENOUGH_REPLICAS) or hold them, never acknowledge them.
func AckedBelowMinISR(h *History) []Anomaly {
	var out []Anomaly
	for _, f := range h.Faults {
		if !f.BelowMinISR {
			continue
		}
		for _, p := range h.Produces {
			if p.Acked() && !p.Start.Before(f.At) && p.End.Before(f.HealStart) {
				out = append(out, Anomaly{p.Partition, p.Offset, fmt.Sprintf("%s acknowledged at %s during %s", p.Value(), p.End.Format("15:04:05.000"), f.Name)})
			}
		}
	}
	sortAnomalies(out)
	return out
}

// IncompleteFinal names partitions whose final read stopped short of the end offset it
// was meant to reach; the other checks are only meaningful when this is empty.
func IncompleteFinal(h *History) []Anomaly {
	next := map[int32]int64{}
	for _, r := range h.Final {
		if r.Offset+1 > next[r.Partition] {
			next[r.Partition] = r.Offset + 1
		}
	}
	var out []Anomaly
	for p, end := range h.FinalEnds {
		if next[p] < end {
			out = append(out, Anomaly{p, next[p], fmt.Sprintf("final read reached %d of end %d", next[p], end)})
		}
	}
	sortAnomalies(out)
	return out
}

// Outage is how long writes failed after one fault.
type Outage struct {
	Fault     string
	Duration  time.Duration
	Recovered bool // false: some partition took no write until the workload ended
}

// Unavailability measures, for each fault, the longest time any partition went without
// acknowledging a write after the fault: for each partition, the acknowledgements of
// writes begun after the fault are put in time order, starting from the fault itself, and
// the widest gap counts (up to the next fault, or the end of the workload). Writes begun
// before the fault do not count, since the cluster may have accepted them before it broke;
// a gap in the middle counts as much as the first, since a fault such as a full disk lets a
// few writes through before it bites. A partition with a write begun after its last
// acknowledgement that was never acknowledged has not recovered. Only acknowledgements
// before the next fault count, so one fault's outage is not charged to the one before.
func Unavailability(h *History) []Outage {
	var out []Outage
	for i, f := range h.Faults {
		end := h.End
		if i+1 < len(h.Faults) {
			end = h.Faults[i+1].At
		}
		acks := map[int32][]time.Time{}
		tried := map[int32]bool{}
		for _, p := range h.Produces {
			if p.Start.Before(f.At) || !p.Start.Before(end) {
				continue
			}
			tried[p.Partition] = true
			if p.Acked() {
				acks[p.Partition] = append(acks[p.Partition], p.End)
			}
		}
		o := Outage{Fault: f.Name, Recovered: true}
		for partition := range tried {
			ends := acks[partition]
			slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
			prev := f.At
			for _, e := range ends {
				if !e.Before(end) {
					break // the next fault's, or after the workload stopped
				}
				if d := e.Sub(prev); d > o.Duration {
					o.Duration = d
				}
				prev = e
			}
			for _, p := range h.Produces {
				if p.Partition == partition && !p.Acked() && !p.Start.Before(prev) && p.Start.Before(end) {
					o.Recovered = false
					if d := end.Sub(prev); d > o.Duration {
						o.Duration = d
					}
					break
				}
			}
		}
		if len(tried) == 0 {
			o.Recovered = false
			o.Duration = end.Sub(f.At)
		}
		out = append(out, o)
	}
	return out
}

// Report is every check's outcome for one scenario.
type Report struct {
	Scenario       string
	Acked, Failed  int
	Lost           []Anomaly
	Duplicates     []Anomaly
	OutOfOrder     []Anomaly
	Reused         []Anomaly
	Stale          []Anomaly
	Incomplete     []Anomaly
	SharedIDs      []Anomaly
	DoubleAcks     []Anomaly
	BelowMinISR    []Anomaly
	Divergent      []Anomaly
	Outages        []Outage
	ReadsDuringRun int
}

// Check runs every check over h.
func Check(scenario string, h *History) Report {
	r := Report{Scenario: scenario, ReadsDuringRun: len(h.Reads)}
	for _, p := range h.Produces {
		if p.Acked() {
			r.Acked++
		} else {
			r.Failed++
		}
	}
	r.Lost = LostAcked(h)
	r.Duplicates = Duplicates(h)
	r.OutOfOrder = OutOfOrder(h)
	r.Reused = ReusedOffsets(h)
	r.Stale = StaleReads(h)
	r.Incomplete = IncompleteFinal(h)
	r.SharedIDs = SharedProducerIDs(h)
	r.DoubleAcks = DoubleAcks(h)
	r.BelowMinISR = AckedBelowMinISR(h)
	r.Divergent = h.Divergence
	r.Outages = Unavailability(h)
	return r
}

// Problems describes every failed check, at most a few examples each; empty means all held.
func (r Report) Problems() []string {
	var out []string
	add := func(what string, as []Anomaly) { out = appendProblem(out, what, as) }
	add("partitions not fully read at the end", r.Incomplete)
	add("producer ids shared by two producers", r.SharedIDs)
	add("acknowledged writes lost", r.Lost)
	add("duplicates", r.Duplicates)
	add("records out of order", r.OutOfOrder)
	add("offsets reused for different records", r.Reused)
	add("positions acknowledged for two different records", r.DoubleAcks)
	add("writes acknowledged with fewer replicas up than min.insync.replicas", r.BelowMinISR)
	add("partitions whose replicas hold different batches below the high watermark", r.Divergent)
	add("stale reads (values that later disappeared or changed)", r.Stale)
	for _, o := range r.Outages {
		if !o.Recovered {
			out = append(out, fmt.Sprintf("writes did not recover after %s (waited %.1fs)", o.Fault, o.Duration.Seconds()))
		}
	}
	if r.Acked == 0 {
		out = append(out, "no write was acknowledged")
	}
	return out
}

// appendProblem adds to problems one line for a failed check: how many anomalies it
// found, with a few examples; nothing when it found none.
func appendProblem[A fmt.Stringer](problems []string, what string, as []A) []string {
	if len(as) == 0 {
		return problems
	}
	var ex []string
	for _, a := range as[:min(len(as), 5)] {
		ex = append(ex, a.String())
	}
	return append(problems, fmt.Sprintf("%d %s, e.g. %s", len(as), what, strings.Join(ex, "; ")))
}

// OutageStats are the median and the maximum outage, in seconds.
func (r Report) OutageStats() (median, max float64) {
	if len(r.Outages) == 0 {
		return 0, 0
	}
	ds := make([]float64, len(r.Outages))
	for i, o := range r.Outages {
		ds[i] = o.Duration.Seconds()
	}
	slices.Sort(ds)
	mid := len(ds) / 2
	median = ds[mid]
	if len(ds)%2 == 0 {
		median = (ds[mid-1] + ds[mid]) / 2
	}
	return median, ds[len(ds)-1]
}

// Row is the report as one line of the summary table.
func (r Report) Row() string {
	med, mx := r.OutageStats()
	return fmt.Sprintf("%-28s | %7d | %4d | %4d | %5d | %5d | %5d | %4d | %6.2fs / %6.2fs",
		r.Scenario, r.Acked, len(r.Lost), len(r.Duplicates), len(r.OutOfOrder), len(r.Reused), len(r.Stale), len(r.Divergent), med, mx)
}

// TableHeader heads the rows of Row.
const TableHeader = "scenario                     |   acked | lost | dups | order | reuse | stale | div. | unavail median / max"

func sortAnomalies(as []Anomaly) {
	slices.SortFunc(as, func(a, b Anomaly) int {
		if a.Partition != b.Partition {
			return compareInt64(int64(a.Partition), int64(b.Partition))
		}
		if a.Offset != b.Offset {
			return compareInt64(a.Offset, b.Offset)
		}
		return strings.Compare(a.Detail, b.Detail)
	})
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
