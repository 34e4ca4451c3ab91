package cluster

import (
	"slices"
	"strings"
	"testing"
)

// These tests run the transactional checks over hand-made histories: each check must
// catch what it is for, and every other check must stay quiet about it. They start no
// process and run under -short too.

func send(topic string, partition int32, key, value, source string) TxnSend {
	return TxnSend{Topic: topic, Partition: partition, Key: key, Value: value, Source: source}
}

func txn(producer string, seq int, outcome TxnOutcome, sends ...TxnSend) Txn {
	t := Txn{Producer: producer, Seq: seq, Outcome: outcome, Sends: sends}
	if outcome == TxnUnknown {
		t.Err = "REQUEST_TIMED_OUT"
	}
	return t
}

func committedRead(consumer int, topic string, partition int32, offset int64, value string) TxnRead {
	return TxnRead{Consumer: consumer, Isolation: ReadCommitted, Topic: topic, Partition: partition, Offset: offset, Value: value}
}

func uncommittedRead(consumer int, topic string, partition int32, offset int64, value string) TxnRead {
	return TxnRead{Consumer: consumer, Isolation: ReadUncommitted, Topic: topic, Partition: partition, Offset: offset, Value: value}
}

func finalRead(topic string, partition int32, offset int64, key, value string) TxnRead {
	return TxnRead{Consumer: -1, Isolation: ReadCommitted, Topic: topic, Partition: partition, Offset: offset, Key: key, Value: value}
}

func marker(topic string, partition int32, offset int64, producer string, commit bool) TxnMarker {
	return TxnMarker{Topic: topic, Partition: partition, Offset: offset, Producer: producer, Commit: commit}
}

// txnClean is a history with nothing wrong: an ETL chain in → mid → out. Producer a
// writes the input: a#0 commits, a#1 aborts, a#2's EndTxn timed out and it committed,
// a#3's timed out and it aborted (one record in, one in mid). Copier b copies in to mid in
// two committed transactions; copier c copies mid to out, and its attempt at a2-0's copy
// aborts once before it commits. The logs, with markers (C commit, A abort):
//
//	in/0:  0 a0-0  1 a0-2  2 C(a)  3 a1-0  4 A(a)  5 a2-0  6 C(a)
//	in/1:  0 a0-1  1 C(a)  2 a1-1  3 A(a)  4 a3-0  5 A(a)
//	mid/0: 0 b0-0  1 b0-1  2 b0-2  3 C(b)  4 b1-0  5 C(b)  10 a3-1  11 A(a)
//	out/0: 0 c0-0  1 c0-1  2 c0-2  3 C(c)  4 c1-0  5 A(c)  6 c2-0  7 C(c)
//
// Consumer 1 reads in at read_committed; 2 reads in and mid at read_uncommitted; 3 reads
// out and stops inside c#0; 4 starts inside c#0 (a committed offset may lie there); 5
// reads in/1 twice (a rewind it did not number).
func txnClean() *TxnHistory {
	return &TxnHistory{
		Chain: []string{"in", "mid", "out"},
		Txns: []Txn{
			txn("a", 0, TxnCommitted, send("in", 0, "k1", "a0-0", ""), send("in", 1, "k2", "a0-1", ""), send("in", 0, "k1", "a0-2", "")),
			txn("a", 1, TxnAborted, send("in", 0, "k1", "a1-0", ""), send("in", 1, "k2", "a1-1", "")),
			txn("a", 2, TxnUnknown, send("in", 0, "k1", "a2-0", "")),
			txn("a", 3, TxnUnknown, send("in", 1, "k2", "a3-0", ""), send("mid", 0, "k2", "a3-1", "")),
			txn("b", 0, TxnCommitted, send("mid", 0, "k1", "b0-0", "a0-0"), send("mid", 0, "k2", "b0-1", "a0-1"), send("mid", 0, "k1", "b0-2", "a0-2")),
			txn("b", 1, TxnCommitted, send("mid", 0, "k1", "b1-0", "a2-0")),
			txn("c", 0, TxnCommitted, send("out", 0, "k1", "c0-0", "b0-0"), send("out", 0, "k2", "c0-1", "b0-1"), send("out", 0, "k1", "c0-2", "b0-2")),
			txn("c", 1, TxnAborted, send("out", 0, "k1", "c1-0", "b1-0")),
			txn("c", 2, TxnCommitted, send("out", 0, "k1", "c2-0", "b1-0")),
		},
		Reads: []TxnRead{
			committedRead(1, "in", 0, 0, "a0-0"), committedRead(1, "in", 1, 0, "a0-1"), committedRead(1, "in", 0, 1, "a0-2"), committedRead(1, "in", 0, 5, "a2-0"),
			uncommittedRead(2, "in", 0, 0, "a0-0"), uncommittedRead(2, "in", 0, 1, "a0-2"), uncommittedRead(2, "in", 0, 3, "a1-0"),
			uncommittedRead(2, "in", 1, 2, "a1-1"), uncommittedRead(2, "in", 1, 4, "a3-0"), uncommittedRead(2, "mid", 0, 10, "a3-1"),
			committedRead(3, "out", 0, 0, "c0-0"),
			committedRead(4, "out", 0, 1, "c0-1"), committedRead(4, "out", 0, 2, "c0-2"), committedRead(4, "out", 0, 6, "c2-0"),
			committedRead(5, "in", 1, 0, "a0-1"), committedRead(5, "in", 1, 0, "a0-1"),
		},
		Final: []TxnRead{
			finalRead("in", 0, 0, "k1", "a0-0"), finalRead("in", 0, 1, "k1", "a0-2"), finalRead("in", 0, 5, "k1", "a2-0"),
			finalRead("in", 1, 0, "k2", "a0-1"),
			finalRead("mid", 0, 0, "k1", "b0-0"), finalRead("mid", 0, 1, "k2", "b0-1"), finalRead("mid", 0, 2, "k1", "b0-2"), finalRead("mid", 0, 4, "k1", "b1-0"),
			finalRead("out", 0, 0, "k1", "c0-0"), finalRead("out", 0, 1, "k2", "c0-1"), finalRead("out", 0, 2, "k1", "c0-2"), finalRead("out", 0, 6, "k1", "c2-0"),
		},
		Markers: []TxnMarker{
			marker("in", 0, 2, "a", true), marker("in", 0, 4, "a", false), marker("in", 0, 6, "a", true),
			marker("in", 1, 1, "a", true), marker("in", 1, 3, "a", false), marker("in", 1, 5, "a", false),
			marker("mid", 0, 3, "b", true), marker("mid", 0, 5, "b", true), marker("mid", 0, 11, "a", false),
			marker("out", 0, 3, "c", true), marker("out", 0, 5, "c", false), marker("out", 0, 7, "c", true),
		},
	}
}

// expectAnomalies runs every check over h: each named in want must report exactly one
// anomaly containing the text given, every other check none.
func expectAnomalies(t *testing.T, h *TxnHistory, want map[string]string) {
	t.Helper()
	checked := map[string]bool{}
	for _, c := range (&TxnReport{}).checks() {
		checked[c.name] = true
		got := c.check(h)
		text, wanted := want[c.name]
		switch {
		case !wanted && len(got) != 0:
			t.Errorf("%s reports %v, want nothing", c.name, got)
		case wanted && (len(got) != 1 || !strings.Contains(got[0].String(), text)):
			t.Errorf("%s reports %v, want one anomaly containing %q", c.name, got, text)
		}
	}
	for name := range want {
		if !checked[name] {
			t.Fatalf("no check named %q", name)
		}
	}
}

func TestTxnCheckCleanHistory(t *testing.T) {
	h := txnClean()
	expectAnomalies(t, h, nil)
	r := CheckTxn("clean", h)
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("problems in a clean history: %v", p)
	}
	if r.Committed != 5 || r.Aborted != 2 || r.Unknown != 2 || r.Records != 12 || r.ChainInputs != 4 {
		t.Fatalf("report %+v, want 5 committed, 2 aborted, 2 unknown, 12 records, 4 chain inputs", r)
	}
	if row := r.Row(); len(row) != len(TxnTableHeader) || !strings.HasPrefix(row, "clean ") {
		t.Fatalf("row %q does not line up with the header\n%q", row, TxnTableHeader)
	}

	// A final read that kept no keys: the chain's key order falls back to the sends' keys.
	for i := range h.Final {
		h.Final[i].Key = ""
	}
	expectAnomalies(t, h, nil)
	h.Txns[6].Sends[0].Source, h.Txns[6].Sends[2].Source = "b0-2", "b0-0"
	expectAnomalies(t, h, map[string]string{"chain": `c0-2 (from a0-0, key "k1") after the copy of a0-2`})
}

func TestTxnCheckMarkers(t *testing.T) {
	// A marker of c's that no recorded transaction explains (its transaction was not
	// recorded) cannot be attributed; it must not make c0-2 look late.
	h := txnClean()
	h.Markers = append(h.Markers, marker("out", 0, 1, "c", false))
	expectAnomalies(t, h, nil)
	// One too few (c#1's AddPartitionsToTxn failed, say) hides nothing here either.
	h = txnClean()
	h.Markers = slices.Delete(h.Markers, 10, 11)
	expectAnomalies(t, h, nil)
}

func TestTxnCheckCatches(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(h *TxnHistory)
		want   map[string]string
	}{
		{"read_committed consumer returns an aborted record", func(h *TxnHistory) {
			// Consumer 1 returns a1-0 between a0-2 and a2-0.
			h.Reads = slices.Insert(h.Reads, 3, committedRead(1, "in", 0, 3, "a1-0"))
		}, map[string]string{"aborted reads": "in/0@3: read_committed consumer 1 returned a1-0 of aborted a#1"}},
		{"final read finds an aborted record", func(h *TxnHistory) {
			h.Final = append(h.Final, finalRead("out", 0, 4, "k1", "c1-0"))
		}, map[string]string{
			"aborted reads": "the final read returned c1-0 of aborted c#1",
			"chain":         "a2-0 reached out again (first as c1-0", // the copy of an aborted copy counts
		}},
		{"committed record lost", func(h *TxnHistory) {
			h.Final = slices.DeleteFunc(h.Final, func(r TxnRead) bool { return r.Value == "b0-1" })
		}, map[string]string{"lost": "mid/0: b0-1 of committed b#0 is missing from the final read"}},
		{"record read at read_committed, then gone", func(h *TxnHistory) {
			// c#2 ended unknown; consumer 4 saw its record, so it committed; it must stay.
			h.Txns[8].Outcome = TxnUnknown
			h.Final = slices.DeleteFunc(h.Final, func(r TxnRead) bool { return r.Value == "c2-0" })
		}, map[string]string{
			"lost":  "out/0@6: read_committed consumer 4 read c2-0 of unknown c#2, missing from the final read",
			"chain": "a2-0 never reached out",
		}},
		{"duplicate within a transaction", func(h *TxnHistory) {
			h.Final = slices.Insert(h.Final, 8, finalRead("mid", 0, 5, "k1", "b1-0"))
			h.Markers[7].Offset = 6
		}, map[string]string{"duplicates": "mid/0@5: b1-0 stored again (first at mid/0@4)"}},
		{"consumer skips a committed record inside its range", func(h *TxnHistory) {
			h.Reads = slices.DeleteFunc(h.Reads, func(r TxnRead) bool { return r.Consumer == 1 && r.Value == "a0-2" })
		}, map[string]string{"partial": "in/0@1: read_committed consumer 1 read 0..5 and returned 1 of committed a#0's 2 records here, not a0-2"}},
		{"consumer skips a whole committed transaction", func(h *TxnHistory) {
			// c#1 committed (so c2-0 copies a2-0 again), and consumer 4, reading 1..6,
			// returned none of it.
			h.Txns[7].Outcome = TxnCommitted
			h.Markers[10].Commit = true
			h.Final = slices.Insert(h.Final, 11, finalRead("out", 0, 4, "k1", "c1-0"))
		}, map[string]string{
			"partial": "out/0@4: read_committed consumer 4 read 1..6 and returned 0 of committed c#1's 1 records here, not c1-0",
			"chain":   "out/0@6: a2-0 reached out again (first as c1-0 at out/0@4)",
		}},
		{"records of a transaction out of send order", func(h *TxnHistory) {
			h.Final[5].Value, h.Final[6].Value = "b0-2", "b0-1"
		}, map[string]string{"order": "mid/0@2: b#0's send 1 (b0-1) after its send 2 (b0-2)"}},
		{"indeterminate transaction torn", func(h *TxnHistory) {
			h.Final = append(h.Final, finalRead("mid", 0, 10, "k2", "a3-1"))
		}, map[string]string{"indeterminate": "a#3 (EndTxn: REQUEST_TIMED_OUT) is torn: a3-1 visible, a3-0 not"}},
		{"a record nobody sent", func(h *TxnHistory) {
			h.Final = append(h.Final, finalRead("mid", 0, 12, "", "zz"))
		}, map[string]string{"phantoms": "mid/0@12: zz was never sent"}},
		{"one value sent twice", func(h *TxnHistory) {
			h.Txns = append(h.Txns, txn("d", 0, TxnAborted, send("in", 1, "k2", "a0-1", "")))
		}, map[string]string{"phantoms": "a0-1 sent by two sends"}},
		{"input copied twice by committed transactions", func(h *TxnHistory) {
			h.Txns = append(h.Txns, txn("c", 3, TxnCommitted, send("out", 0, "k1", "c3-0", "b1-0")))
			h.Final = append(h.Final, finalRead("out", 0, 8, "k1", "c3-0"))
			h.Markers = append(h.Markers, marker("out", 0, 9, "c", true))
		}, map[string]string{"chain": "out/0@8: a2-0 reached out again (first as c2-0 at out/0@6)"}},
		{"input never copied", func(h *TxnHistory) {
			h.Txns[8].Outcome = TxnUnknown // c#2's end timed out and it aborted
			h.Final = slices.DeleteFunc(h.Final, func(r TxnRead) bool { return r.Value == "c2-0" })
			h.Reads = slices.DeleteFunc(h.Reads, func(r TxnRead) bool { return r.Value == "c2-0" })
		}, map[string]string{"chain": "in/0@5: a2-0 never reached out"}},
		{"copies of one key out of input order", func(h *TxnHistory) {
			// The copier wrote a0-2's copy before a0-0's.
			h.Txns[6].Sends[0].Source, h.Txns[6].Sends[2].Source = "b0-2", "b0-0"
		}, map[string]string{"chain": `out/0@2: c0-2 (from a0-0, key "k1") after the copy of a0-2`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := txnClean()
			c.break_(h)
			expectAnomalies(t, h, c.want)
			if p := CheckTxn(c.name, h).Problems(); len(p) == 0 {
				t.Fatal("TxnReport.Problems is empty for a broken history")
			}
		})
	}
}

// The delayed EndTxn/Produce histories: producer p's transaction 0 sends to t/0 and t/1;
// its Produce to t/1 is held up in the network while EndTxn goes through and writes p's
// marker to both partitions, transaction 1 begins and adds t/1, and only then does the
// held Produce land, inside transaction 1 (KAFKA-17754; Jepsen, Bufstream 0.1.0).
func delayedProduce(first, second TxnOutcome) *TxnHistory {
	return &TxnHistory{
		Txns: []Txn{
			txn("p", 0, first, send("t", 0, "", "p0-0", ""), send("t", 1, "", "p0-1", "")),
			txn("p", 1, second, send("t", 1, "", "p1-0", "")),
		},
		// t/0: 0 p0-0  1 end(p#0)    t/1: 0 end(p#0)  1 p0-1 (late)  2 p1-0  3 end(p#1)
		Markers: []TxnMarker{
			marker("t", 0, 1, "p", first == TxnCommitted), marker("t", 1, 0, "p", first == TxnCommitted),
			marker("t", 1, 3, "p", second == TxnCommitted),
		},
		Reads: []TxnRead{uncommittedRead(1, "t", 1, 1, "p0-1"), uncommittedRead(1, "t", 1, 2, "p1-0")},
	}
}

func TestTxnDelayedProduce(t *testing.T) {
	t.Run("transaction 0 commits, 1 aborts: a committed record is lost", func(t *testing.T) {
		h := delayedProduce(TxnCommitted, TxnAborted)
		h.Final = []TxnRead{finalRead("t", 0, 0, "", "p0-0")}
		h.Reads = append(h.Reads, committedRead(2, "t", 0, 0, "p0-0"))
		expectAnomalies(t, h, map[string]string{
			"lost": "t/1: p0-1 of committed p#0 is missing",
			"late": "t/1@1: p0-1 (p#0) after the commit marker that ended it at 0",
		})
		// Without the markers the loss is still seen; where the record went is not.
		h.Markers = nil
		expectAnomalies(t, h, map[string]string{"lost": "p0-1 of committed p#0 is missing"})
	})
	t.Run("transaction 0 aborts, 1 commits: an aborted record is read", func(t *testing.T) {
		h := delayedProduce(TxnAborted, TxnCommitted)
		h.Final = []TxnRead{finalRead("t", 1, 1, "", "p0-1"), finalRead("t", 1, 2, "", "p1-0")}
		h.Reads = append(h.Reads, committedRead(2, "t", 1, 1, "p0-1"), committedRead(2, "t", 1, 2, "p1-0"))
		expectAnomalies(t, h, map[string]string{
			"aborted reads": "t/1@1: read_committed consumer 2 returned p0-1 of aborted p#0",
			"late":          "t/1@1: p0-1 (p#0) after the abort marker that ended it at 0",
		})
	})
	t.Run("transaction 0's record lands after transaction 1's", func(t *testing.T) {
		h := delayedProduce(TxnCommitted, TxnCommitted)
		// The held Produce lands after transaction 1's first record; no markers known.
		h.Markers = nil
		h.Reads = nil
		h.Final = []TxnRead{finalRead("t", 0, 0, "", "p0-0"), finalRead("t", 1, 1, "", "p1-0"), finalRead("t", 1, 2, "", "p0-1")}
		expectAnomalies(t, h, map[string]string{"late": "t/1@2: p0-1 (p#0) after p1-0 (p#1) at 1"})
	})
	t.Run("in order, nothing to report", func(t *testing.T) {
		h := delayedProduce(TxnCommitted, TxnCommitted)
		h.Markers = []TxnMarker{marker("t", 0, 1, "p", true), marker("t", 1, 1, "p", true), marker("t", 1, 3, "p", true)}
		h.Reads = nil
		h.Final = []TxnRead{finalRead("t", 0, 0, "", "p0-0"), finalRead("t", 1, 0, "", "p0-1"), finalRead("t", 1, 2, "", "p1-0")}
		expectAnomalies(t, h, nil)
	})
}
