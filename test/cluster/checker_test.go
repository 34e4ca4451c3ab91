package cluster

import (
	"strings"
	"testing"
	"time"
)

// These tests run the checks over hand-made histories, so that each check is seen to
// catch what it is for, and to stay quiet on a clean history. They start no process and
// run under -short too.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ack(producer int, seq int64, partition int32, offset int64, startMs, endMs int) Produce {
	return Produce{Producer: producer, Seq: seq, Partition: partition, Offset: offset, Start: at(startMs), End: at(endMs)}
}

func fail(producer int, seq int64, partition int32, startMs, endMs int) Produce {
	return Produce{Producer: producer, Seq: seq, Partition: partition, Offset: -1, Start: at(startMs), End: at(endMs), Err: "timed out"}
}

func rd(partition int32, offset int64, producer int, seq int64) Read {
	return Read{Partition: partition, Offset: offset, Value: RecordValue(producer, seq), At: at(0)}
}

// clean is a history with nothing wrong: two producers, two partitions, one fault after
// which partition 0 needs 400ms and partition 1 needs 900ms to take a write again, and a
// failed write that was never stored.
func clean() *History {
	return &History{
		Produces: []Produce{
			ack(0, 0, 0, 0, 0, 10), ack(0, 1, 1, 0, 1, 11), ack(1, 0, 0, 1, 2, 12),
			fail(1, 1, 1, 1000, 1500),
			ack(0, 2, 0, 2, 1100, 1400), ack(1, 2, 1, 1, 1200, 1900),
		},
		Reads:       []Read{rd(0, 0, 0, 0), rd(0, 1, 1, 0), rd(1, 0, 0, 1)},
		Final:       []Read{rd(0, 0, 0, 0), rd(0, 1, 1, 0), rd(0, 2, 0, 2), rd(1, 0, 0, 1), rd(1, 1, 1, 2)},
		FinalEnds:   map[int32]int64{0: 3, 1: 2},
		Faults:      []Fault{{Name: "kill", At: at(1000), Healed: at(1100)}},
		ProducerIDs: []ProducerID{{Producer: 0, ID: 7}, {Producer: 1, ID: 8}, {Producer: 0, ID: 7, Epoch: 1}},
		End:         at(3000),
	}
}

func TestCheckCleanHistory(t *testing.T) {
	r := Check("clean", clean())
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("problems in a clean history: %v", p)
	}
	if r.Acked != 5 || r.Failed != 1 {
		t.Fatalf("acked %d failed %d, want 5 and 1", r.Acked, r.Failed)
	}
	if len(r.Outages) != 1 || r.Outages[0].Duration != 900*time.Millisecond || !r.Outages[0].Recovered {
		t.Fatalf("outages %+v, want one of 900ms (the slower partition)", r.Outages)
	}
}

func TestCheckCatches(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(h *History)
		check  func(h *History) []Anomaly
		want   string
	}{
		{"lost acked write", func(h *History) {
			h.Final = h.Final[1:]
			h.FinalEnds[0] = 3
		}, LostAcked, "p0-s0 is missing"},
		{"duplicate after retry", func(h *History) {
			h.Final = append(h.Final, rd(1, 2, 0, 2))
			h.FinalEnds[1] = 3
		}, Duplicates, "p0-s2 stored again (first at p0@2)"},
		{"producer sequence backwards", func(h *History) {
			h.Final = append(h.Final, rd(0, 3, 0, 1))
			h.FinalEnds[0] = 4
		}, OutOfOrder, "p0-s1 after p0-s2"},
		{"late duplicate is not also out of order", func(h *History) {
			h.Final = append(h.Final, rd(0, 3, 0, 0))
			h.FinalEnds[0] = 4
		}, Duplicates, "p0-s0 stored again (first at p0@0)"},
		{"acknowledged offset holds another record", func(h *History) {
			h.Final[2] = rd(0, 2, 1, 1) // p0-s2 acked at p0@2, but p1-s1 is stored there
		}, ReusedOffsets, "acknowledged p0-s2 here, final read found p1-s1"},
		{"two records acknowledged at one offset", func(h *History) {
			h.Produces = append(h.Produces, ack(1, 5, 0, 2, 1300, 1310))
		}, DoubleAcks, "acknowledged both p0-s2 and p1-s5 here"},
		{"acknowledged record stored elsewhere", func(h *History) {
			h.Produces[0].Offset = 5
		}, ReusedOffsets, "found it at p0@0"},
		{"two values at one offset in the final read", func(h *History) {
			h.Final = append(h.Final, rd(0, 1, 1, 9))
		}, ReusedOffsets, "found both p1-s0 and p1-s9"},
		{"read a value that later changed", func(h *History) {
			h.Reads = append(h.Reads, rd(0, 2, 1, 7))
		}, StaleReads, "read p1-s7"},
		{"read past what survived", func(h *History) {
			h.Reads = append(h.Reads, rd(0, 3, 1, 3))
		}, StaleReads, "gone from the final read (end 3)"},
		{"two producers share a producer id", func(h *History) {
			h.ProducerIDs = append(h.ProducerIDs, ProducerID{Producer: 1, ID: 7})
		}, SharedProducerIDs, "producer id 7 given to p0 and p1"},
		{"acknowledged below min.insync.replicas", func(h *History) {
			h.Faults[0].BelowMinISR, h.Faults[0].HealStart = true, at(1300)
			h.Produces = append(h.Produces, ack(1, 7, 1, 2, 1001, 1200))
			h.Final = append(h.Final, rd(1, 2, 1, 7))
			h.FinalEnds[1] = 3
		}, AckedBelowMinISR, "p1-s7 acknowledged at"},
		{"final read stopped early", func(h *History) {
			h.FinalEnds[1] = 7
		}, IncompleteFinal, "reached 2 of end 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.check(clean()); len(got) != 0 {
				t.Fatalf("check reports a clean history: %v", got)
			}
			h := clean()
			c.break_(h)
			got := c.check(h)
			if c.name == "late duplicate is not also out of order" {
				if o := OutOfOrder(h); len(o) != 0 {
					t.Fatalf("a duplicate counted as out of order: %v", o)
				}
			}
			if len(got) != 1 || !strings.Contains(got[0].Detail, c.want) {
				t.Fatalf("got %v, want one anomaly containing %q", got, c.want)
			}
			if p := Check(c.name, h).Problems(); len(p) == 0 {
				t.Fatal("Report.Problems is empty for a broken history")
			}
		})
	}
}

func TestUnavailability(t *testing.T) {
	h := clean()
	// A write begun before the fault and acknowledged after it does not count as recovery.
	h.Produces = append(h.Produces, ack(0, 3, 1, 2, 900, 1001))
	h.Final = append(h.Final, rd(1, 2, 0, 3))
	h.FinalEnds[1] = 3
	if o := Unavailability(h); o[0].Duration != 900*time.Millisecond {
		t.Fatalf("outage %v, want 900ms", o[0].Duration)
	}

	// A partition that never takes a write after the fault: not recovered, outage runs to
	// the end of the workload.
	h = clean()
	h.Produces = append(h.Produces, fail(0, 9, 1, 2000, 2500))
	h.Produces[5].Err = "not enough replicas"
	o := Unavailability(h)
	if o[0].Recovered || o[0].Duration != 2*time.Second {
		t.Fatalf("outage %+v, want not recovered after 2s", o[0])
	}
	if p := Check("x", h).Problems(); len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), "did not recover") {
		t.Fatalf("problems %v, want a recovery failure", p)
	}

	// A fault that lets a few writes through before it bites: the gap after them counts.
	h = clean()
	h.Produces = append(h.Produces, ack(0, 3, 0, 3, 1001, 1010), ack(0, 5, 0, 4, 1050, 2500))
	h.Final = append(h.Final, rd(0, 3, 0, 3), rd(0, 4, 0, 5))
	h.FinalEnds[0] = 5
	if o := Unavailability(h); !o[0].Recovered || o[0].Duration != 1100*time.Millisecond {
		t.Fatalf("outage %+v, want 1.1s (from 1.4s to 2.5s on partition 0)", o[0])
	}

	// A write begun before the next fault and held up by it is the next fault's outage.
	h = clean()
	h.Faults = append(h.Faults, Fault{Name: "kill again", At: at(2000), Healed: at(2100)})
	h.Produces = append(h.Produces, ack(0, 3, 0, 3, 1990, 2800), ack(0, 4, 0, 4, 2010, 2810), ack(1, 3, 1, 2, 2020, 2300))
	h.Final = append(h.Final, rd(0, 3, 0, 3), rd(0, 4, 0, 4), rd(1, 2, 1, 3))
	h.FinalEnds[0], h.FinalEnds[1] = 5, 3
	if o := Unavailability(h); o[0].Duration != 900*time.Millisecond || o[1].Duration != 810*time.Millisecond {
		t.Fatalf("outages %+v, want 900ms for the first fault and 810ms for the second", o)
	}

	r := Report{Outages: []Outage{{Duration: 3 * time.Second}, {Duration: time.Second}, {Duration: 2 * time.Second}, {Duration: 10 * time.Second}}}
	if med, mx := r.OutageStats(); med != 2.5 || mx != 10 {
		t.Fatalf("median %v max %v, want 2.5 and 10", med, mx)
	}
}

func TestParseValue(t *testing.T) {
	if p, s, ok := ParseValue(RecordValue(3, 12345)); !ok || p != 3 || s != 12345 {
		t.Fatalf("round trip: %d %d %v", p, s, ok)
	}
	for _, bad := range []string{"", "p1", "x1-s2", "p1-s2junk", "p01-s2"} {
		if _, _, ok := ParseValue(bad); ok {
			t.Fatalf("ParseValue(%q) accepted", bad)
		}
	}
}
