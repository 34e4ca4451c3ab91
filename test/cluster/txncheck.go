package cluster

import (
	"fmt"
	"slices"
	"strings"
)

// The transactional checks are pure functions of a TxnHistory, each returning what it
// found; a correct cluster yields none. Each kind of anomaly was found by Jepsen in a real
// Kafka-compatible system:
//
//   - Redpanda 21.10.1 (https://jepsen.io/analyses/redpanda-21.10.1, 2022): aborted reads
//     (read_committed consumers seeing records of aborted transactions), lost and
//     duplicated writes, inconsistent offsets.
//   - Bufstream 0.1.0 (https://jepsen.io/analyses/bufstream-0.1.0, 2024), and Kafka itself
//     as KAFKA-17754: the transaction protocol lets a delayed Produce of transaction N reach
//     a partition after N's EndTxn wrote its marker there and N+1 began, so the record
//     joins N+1. If N committed and N+1 aborts, a committed write is lost; if N aborted and
//     N+1 commits, an aborted write becomes visible; either way N is torn. KIP-890 (a new
//     epoch per transaction, server-side verification of AddPartitionsToTxn) is the fix.
//
// Each anomaly is reported once, by the check it belongs to, so the report's counts do not
// add one event up twice under one name; one event may still be two anomalies (a late
// write that is also an aborted read).

// TxnAnomaly is one violation a transactional check found.
type TxnAnomaly struct {
	Topic     string
	Partition int32 // -1: not about one partition
	Offset    int64 // -1: not about one offset
	Detail    string
}

func (a TxnAnomaly) String() string {
	switch {
	case a.Partition < 0:
		return a.Detail
	case a.Offset < 0:
		return fmt.Sprintf("%s/%d: %s", a.Topic, a.Partition, a.Detail)
	}
	return fmt.Sprintf("%s/%d@%d: %s", a.Topic, a.Partition, a.Offset, a.Detail)
}

func anomalyAt(r TxnRead, format string, args ...any) TxnAnomaly {
	return TxnAnomaly{r.Topic, r.Partition, r.Offset, fmt.Sprintf(format, args...)}
}

// txnPosition is one offset of one partition.
type txnPosition struct {
	tp     TopicPartition
	offset int64
}

func positionOf(r TxnRead) txnPosition {
	return txnPosition{TopicPartition{r.Topic, r.Partition}, r.Offset}
}

// AbortedReads are records of aborted transactions that a read_committed consumer, or the
// final read (also read_committed), returned.
func AbortedReads(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	reported := map[txnPosition]bool{}
	var out []TxnAnomaly
	check := func(r TxnRead, who string) {
		t, _, ok := x.txnOf(r.Value)
		if !ok || t.Outcome != TxnAborted || reported[positionOf(r)] {
			return
		}
		reported[positionOf(r)] = true
		out = append(out, anomalyAt(r, "%s returned %s of aborted %s", who, r.Value, t.Name()))
	}
	for _, r := range h.Reads {
		if r.Isolation == ReadCommitted {
			check(r, fmt.Sprintf("read_committed consumer %d", r.Consumer))
		}
	}
	for _, r := range h.Final {
		check(r, "the final read")
	}
	sortTxnAnomalies(out)
	return out
}

// LostCommitted are records of committed transactions (and acknowledged plain writes)
// that the final read did not find, and records a read_committed consumer saw during the
// run that the final read did not find: what was committed must stay.
func LostCommitted(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	lost := map[string]bool{}
	var out []TxnAnomaly
	for _, t := range h.Txns {
		if t.Outcome != TxnCommitted {
			continue
		}
		for _, s := range t.Sends {
			if len(x.final[s.Value]) == 0 && !lost[s.Value] {
				lost[s.Value] = true
				out = append(out, TxnAnomaly{s.Topic, s.Partition, -1, fmt.Sprintf("%s of committed %s is missing from the final read", s.Value, t.Name())})
			}
		}
	}
	for _, r := range h.Reads {
		t, _, ok := x.txnOf(r.Value)
		if r.Isolation != ReadCommitted || !ok || t.Outcome == TxnAborted || len(x.final[r.Value]) > 0 || lost[r.Value] {
			continue
		}
		lost[r.Value] = true
		out = append(out, anomalyAt(r, "read_committed consumer %d read %s of %s %s, missing from the final read", r.Consumer, r.Value, t.Outcome, t.Name()))
	}
	sortTxnAnomalies(out)
	return out
}

// TxnDuplicates are values found at more than one position by any read: every record a
// transaction sent is stored once, however often its produce was retried.
func TxnDuplicates(h *TxnHistory) []TxnAnomaly {
	first := map[string]txnPosition{}
	reported := map[txnPosition]bool{}
	var out []TxnAnomaly
	for _, r := range slices.Concat(h.Final, h.Reads) {
		pos := positionOf(r)
		at, seen := first[r.Value]
		if !seen {
			first[r.Value] = pos
			continue
		}
		if at != pos && !reported[pos] {
			reported[pos] = true
			out = append(out, anomalyAt(r, "%s stored again (first at %s@%d)", r.Value, at.tp, at.offset))
		}
	}
	sortTxnAnomalies(out)
	return out
}

// readSession is the records one read_committed consumer returned from one partition
// while its offsets kept rising: it read through every offset from first to last.
type readSession struct {
	consumer    int
	tp          TopicPartition
	first, last int64
	seen        map[string]bool
}

// readSessions cuts each read_committed consumer's reads of each partition into sessions;
// an offset that does not rise (a rewind the recorder did not number) starts a new one.
func readSessions(h *TxnHistory) []*readSession {
	type key struct {
		consumer int
		tp       TopicPartition
	}
	open := map[key]*readSession{}
	var all []*readSession
	for _, r := range h.Reads {
		if r.Isolation != ReadCommitted {
			continue
		}
		k := key{r.Consumer, TopicPartition{r.Topic, r.Partition}}
		s := open[k]
		if s == nil || r.Offset <= s.last {
			s = &readSession{consumer: r.Consumer, tp: k.tp, first: r.Offset, seen: map[string]bool{}}
			open[k] = s
			all = append(all, s)
		}
		s.last = r.Offset
		s.seen[r.Value] = true
	}
	return all
}

// PartialReads are transactions a read_committed consumer saw torn: in a partition it read
// through, it returned some of the transaction's committed records (those of the final
// read) but not one that lies between the first and the last offset it read there. A
// consumer that stopped, or started, inside a transaction's records is not counted: only a
// record it read past is missed. A consumer that read past all of a committed
// transaction's records in a partition and saw none of them is counted too: the
// transaction was torn between partitions, or the consumer took it for aborted.
func PartialReads(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	// committed[tp][txn] are the records of transaction txn in tp that the final read found.
	committed := map[TopicPartition]map[int][]logRecord{}
	for _, r := range h.Final {
		t, ref, ok := x.txnOf(r.Value)
		if !ok || t.Producer == "" || t.Outcome == TxnAborted {
			continue // an aborted record in the final read is AbortedReads' to report
		}
		tp := TopicPartition{r.Topic, r.Partition}
		if committed[tp] == nil {
			committed[tp] = map[int][]logRecord{}
		}
		committed[tp][ref.txn] = append(committed[tp][ref.txn], logRecord{r.Offset, r.Value})
	}
	var out []TxnAnomaly
	for _, s := range readSessions(h) {
		txns := make([]int, 0, len(committed[s.tp]))
		for i := range committed[s.tp] {
			txns = append(txns, i)
		}
		slices.Sort(txns)
		for _, i := range txns {
			recs := committed[s.tp][i]
			saw, missed := 0, []logRecord(nil)
			for _, rec := range recs {
				switch {
				case s.seen[rec.value]:
					saw++
				case rec.offset > s.first && rec.offset < s.last:
					missed = append(missed, rec)
				}
			}
			if len(missed) == 0 {
				continue
			}
			slices.SortFunc(missed, func(a, b logRecord) int { return compareInt64(a.offset, b.offset) })
			out = append(out, TxnAnomaly{s.tp.Topic, s.tp.Partition, missed[0].offset,
				fmt.Sprintf("read_committed consumer %d read %d..%d and returned %d of committed %s's %d records here, not %s",
					s.consumer, s.first, s.last, saw, h.Txns[i].Name(), len(recs), missed[0].value)})
		}
	}
	sortTxnAnomalies(out)
	return out
}

// TxnOrder are records of one transaction stored, within a partition, in an order other
// than the one it sent them in. The order of one producer's transactions is LateWrites'.
func TxnOrder(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	var out []TxnAnomaly
	for _, tp := range x.partitions() {
		latest := map[int]int{} // transaction → highest send index stored so far
		for _, rec := range x.log[tp] {
			t, ref, ok := x.txnOf(rec.value)
			if !ok || t.Producer == "" {
				continue
			}
			if prev, seen := latest[ref.txn]; seen && ref.send < prev {
				out = append(out, TxnAnomaly{tp.Topic, tp.Partition, rec.offset,
					fmt.Sprintf("%s's send %d (%s) after its send %d (%s)", t.Name(), ref.send, rec.value, prev, t.Sends[prev].Value)})
				continue
			}
			latest[ref.txn] = ref.send
		}
	}
	sortTxnAnomalies(out)
	return out
}

// endMarkers attributes the markers of each producer in tp to its transactions: the k-th
// marker (by offset) ends the k-th transaction (by Seq) that sent to tp, since the
// coordinator writes one marker to each partition a transaction added, whatever its end.
// Fewer markers than transactions (one whose AddPartitionsToTxn failed, or one still open)
// can only pair a transaction with a later marker than its own, which hides a late write
// but never invents one; more markers than transactions (one the recorder missed) could,
// so that producer's markers in tp are then left unused.
func endMarkers(h *TxnHistory, tp TopicPartition) map[int]TxnMarker {
	markers := map[string][]TxnMarker{}
	for _, m := range h.Markers {
		if (TopicPartition{m.Topic, m.Partition}) == tp {
			markers[m.Producer] = append(markers[m.Producer], m)
		}
	}
	txns := map[string][]int{}
	for i, t := range h.Txns {
		if t.Producer != "" && slices.ContainsFunc(t.Sends, func(s TxnSend) bool { return (TopicPartition{s.Topic, s.Partition}) == tp }) {
			txns[t.Producer] = append(txns[t.Producer], i)
		}
	}
	end := map[int]TxnMarker{}
	for producer, ms := range markers {
		slices.SortFunc(ms, func(a, b TxnMarker) int { return compareInt64(a.Offset, b.Offset) })
		ts := txns[producer]
		if len(ms) > len(ts) {
			continue
		}
		slices.SortFunc(ts, func(a, b int) int { return h.Txns[a].Seq - h.Txns[b].Seq })
		for k := range min(len(ms), len(ts)) {
			end[ts[k]] = ms[k]
		}
	}
	return end
}

// LateWrites are records of a producer's transaction N stored, in a partition, after a
// record of its transaction N+1 (or later), or after the marker that ended N there: the
// delayed Produce of KAFKA-17754 (see the top of this file), whose record then belongs to
// whatever transaction the producer has open. Without markers in the history only the
// first form can be seen; a late record that lands before any record of N+1 in that
// partition needs the markers.
func LateWrites(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	var out []TxnAnomaly
	type latest struct {
		seq    int
		offset int64
		value  string
	}
	for _, tp := range x.partitions() {
		end := endMarkers(h, tp)
		last := map[string]latest{} // producer → its newest transaction stored so far
		for _, rec := range x.log[tp] {
			t, ref, ok := x.txnOf(rec.value)
			if !ok || t.Producer == "" {
				continue
			}
			if m, ended := end[ref.txn]; ended && rec.offset > m.Offset {
				kind := "abort"
				if m.Commit {
					kind = "commit"
				}
				out = append(out, TxnAnomaly{tp.Topic, tp.Partition, rec.offset,
					fmt.Sprintf("%s (%s) after the %s marker that ended it at %d", rec.value, t.Name(), kind, m.Offset)})
				continue
			}
			l, seen := last[t.Producer]
			if seen && t.Seq < l.seq {
				out = append(out, TxnAnomaly{tp.Topic, tp.Partition, rec.offset,
					fmt.Sprintf("%s (%s) after %s (%s#%d) at %d", rec.value, t.Name(), l.value, t.Producer, l.seq, l.offset)})
				continue
			}
			if !seen || t.Seq > l.seq {
				last[t.Producer] = latest{t.Seq, rec.offset, rec.value}
			}
		}
	}
	sortTxnAnomalies(out)
	return out
}

// IndeterminateTxns are transactions whose EndTxn failed or timed out and that ended torn:
// some of their records visible (to the final read or a read_committed consumer) and some
// not. Such a transaction may have committed or aborted, but as a whole.
func IndeterminateTxns(h *TxnHistory) []TxnAnomaly {
	visible := map[string]bool{}
	for _, r := range h.Final {
		visible[r.Value] = true
	}
	for _, r := range h.Reads {
		if r.Isolation == ReadCommitted {
			visible[r.Value] = true
		}
	}
	var out []TxnAnomaly
	for _, t := range h.Txns {
		if t.Outcome != TxnUnknown {
			continue
		}
		var shown, hidden []string
		for _, s := range t.Sends {
			if visible[s.Value] {
				shown = append(shown, s.Value)
			} else {
				hidden = append(hidden, s.Value)
			}
		}
		if len(shown) > 0 && len(hidden) > 0 {
			end := "EndTxn: " + t.Err
			if t.Err == "" {
				end = "never ended"
			}
			out = append(out, TxnAnomaly{"", -1, -1, fmt.Sprintf("%s (%s) is torn: %s visible, %s not",
				t.Name(), end, strings.Join(shown, " "), strings.Join(hidden, " "))})
		}
	}
	sortTxnAnomalies(out)
	return out
}

// TxnPhantoms are records some read returned that no recorded send wrote, and values two
// sends wrote: either makes the history unfit to check (or the cluster invented a record).
func TxnPhantoms(h *TxnHistory) []TxnAnomaly {
	x := indexTxns(h)
	var out []TxnAnomaly
	for _, v := range x.resent {
		out = append(out, TxnAnomaly{"", -1, -1, fmt.Sprintf("%s sent by two sends: reads of it are ambiguous", v)})
	}
	reported := map[txnPosition]bool{}
	for _, r := range slices.Concat(h.Final, h.Reads) {
		if _, _, ok := x.txnOf(r.Value); !ok && !reported[positionOf(r)] {
			reported[positionOf(r)] = true
			out = append(out, anomalyAt(r, "%s was never sent", r.Value))
		}
	}
	sortTxnAnomalies(out)
	return out
}

func sortTxnAnomalies(as []TxnAnomaly) {
	slices.SortFunc(as, func(a, b TxnAnomaly) int {
		if c := compareTopicPartition(TopicPartition{a.Topic, a.Partition}, TopicPartition{b.Topic, b.Partition}); c != 0 {
			return c
		}
		if a.Offset != b.Offset {
			return compareInt64(a.Offset, b.Offset)
		}
		return strings.Compare(a.Detail, b.Detail)
	})
}
