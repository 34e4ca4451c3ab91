package cluster

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// The transactional history (issue 13) is kept apart from History: its records live in
// several topics (an ETL chain reads one and writes the next), belong to transactions
// rather than to single acknowledged produces, and are read at an isolation level. The
// checks over it are in txncheck.go, its report in txnreport.go.

// TxnOutcome is how a transaction ended, as its producer saw it.
type TxnOutcome int

const (
	// TxnUnknown is an indeterminate transaction: EndTxn failed or timed out, or the
	// producer died before sending it. It may have committed or aborted, but whole.
	TxnUnknown TxnOutcome = iota
	// TxnCommitted: EndTxn(commit) succeeded.
	TxnCommitted
	// TxnAborted: EndTxn(abort) succeeded, or the producer gave up on the transaction
	// and its epoch was bumped (the coordinator aborts what was open).
	TxnAborted
)

func (o TxnOutcome) String() string {
	switch o {
	case TxnCommitted:
		return "committed"
	case TxnAborted:
		return "aborted"
	}
	return "unknown"
}

// Isolation is a consumer's isolation.level.
type Isolation int

const (
	ReadUncommitted Isolation = iota
	ReadCommitted
)

// TxnSend is one record a transaction sent. Its Value must be unique in the run: a value
// is how a read is matched to the transaction that wrote it, so a copier that writes the
// same output again in a retried transaction must make it differ (say, by its
// transaction's name).
type TxnSend struct {
	Topic     string
	Partition int32
	Key       string
	Value     string
	// Source is, for a stage of an ETL chain, the value of the input record this one
	// was made from; empty for a record that starts the chain.
	Source string
	Err    string // the produce's error, if the client saw one
}

// Txn is one transaction of one transactional producer, or, with Producer empty, one
// plain (non-transactional) write recorded so its value is known: committed when it was
// acknowledged, unknown when not.
type Txn struct {
	Producer string // transactional.id
	// Seq numbers the producer's transactions in the order they began, from 0, across
	// restarts of the process that holds the transactional id: a zombie's transaction N
	// and its successor's N+1 are told apart by it.
	Seq     int
	Epoch   int16 // the producer epoch, when known; for the reader of a report only
	Sends   []TxnSend
	Outcome TxnOutcome
	Err     string // EndTxn's error, for TxnUnknown
	Start   time.Time
	End     time.Time
}

// Name is how anomalies name the transaction.
func (t Txn) Name() string {
	if t.Producer == "" {
		return "plain write"
	}
	return fmt.Sprintf("%s#%d", t.Producer, t.Seq)
}

// TxnRead is one record a consumer returned from poll.
type TxnRead struct {
	// Consumer numbers one uninterrupted read: the recorder gives a consumer a new
	// number whenever its position may have been set from outside (a new assignment,
	// a seek, a restart), since the checks take the offsets one consumer read in a
	// partition, between the first and the last, as a range it read through.
	Consumer  int
	Isolation Isolation
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     string
	At        time.Time
}

// TxnMarker is a commit or abort control record in a partition, as a raw read of the
// log (one that keeps control batches) found it. Markers are optional: without them the
// late-write check sees only the order of records.
type TxnMarker struct {
	Topic     string
	Partition int32
	Offset    int64
	Producer  string // the transactional id whose producer id the marker carries
	Commit    bool
}

// TxnHistory is everything a transactional scenario did and saw. Every transaction begun
// is in Txns, finished or not: one left out makes its records phantoms and its markers
// unattributable. Reads are what
// consumers saw during the run, each consumer's in poll order; Final is a read_committed
// read of every partition to its end after the run, the truth about what committed.
type TxnHistory struct {
	mu      sync.Mutex
	Txns    []Txn
	Reads   []TxnRead
	Final   []TxnRead
	Markers []TxnMarker
	// Chain names the topics of an ETL chain, input first: every record of the first
	// that committed must appear in the last exactly once, in per-key order, traced
	// back through TxnSend.Source.
	Chain []string
}

// AddTxn records a finished (or abandoned) transaction; safe for concurrent use.
func (h *TxnHistory) AddTxn(t Txn) { appendLocked(&h.mu, &h.Txns, t) }

// AddTxnRead records what a consumer's poll returned; safe for concurrent use.
func (h *TxnHistory) AddTxnRead(r TxnRead) { appendLocked(&h.mu, &h.Reads, r) }

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// sendRef points at one send: h.Txns[txn].Sends[send].
type sendRef struct{ txn, send int }

// logRecord is one record at one offset of a partition.
type logRecord struct {
	offset int64
	value  string
}

// txnIndex is what the checks look things up in, built once per history.
type txnIndex struct {
	h *TxnHistory
	// sender maps a value to the send that wrote it; resent lists values two sends
	// wrote, which make reads of them ambiguous.
	sender map[string]sendRef
	resent []string
	// final maps each value of the final read to the positions it was found at.
	final map[string][]TopicPartition
	// log is each partition's records in offset order, from every read of any
	// isolation level and the final read: what the log held, as far as anyone saw.
	log map[TopicPartition][]logRecord
}

func indexTxns(h *TxnHistory) *txnIndex {
	x := &txnIndex{h: h, sender: map[string]sendRef{}, final: map[string][]TopicPartition{}, log: map[TopicPartition][]logRecord{}}
	for i, t := range h.Txns {
		for j, s := range t.Sends {
			if _, dup := x.sender[s.Value]; dup {
				x.resent = append(x.resent, s.Value)
				continue
			}
			x.sender[s.Value] = sendRef{i, j}
		}
	}
	for _, r := range h.Final {
		x.final[r.Value] = append(x.final[r.Value], TopicPartition{r.Topic, r.Partition})
	}
	seen := map[TopicPartition]map[int64]bool{}
	for _, r := range slices.Concat(h.Final, h.Reads) {
		tp := TopicPartition{r.Topic, r.Partition}
		if seen[tp] == nil {
			seen[tp] = map[int64]bool{}
		}
		if seen[tp][r.Offset] {
			continue // a second value at one offset is ReusedOffsets' business, not ours
		}
		seen[tp][r.Offset] = true
		x.log[tp] = append(x.log[tp], logRecord{r.Offset, r.Value})
	}
	for _, recs := range x.log {
		slices.SortFunc(recs, func(a, b logRecord) int { return compareInt64(a.offset, b.offset) })
	}
	return x
}

// txnOf is the transaction that sent value, if any did.
func (x *txnIndex) txnOf(value string) (Txn, sendRef, bool) {
	ref, ok := x.sender[value]
	if !ok {
		return Txn{}, ref, false
	}
	return x.h.Txns[ref.txn], ref, true
}

// partitions lists the partitions of the log in a fixed order, so anomalies come out in
// the same order every run.
func (x *txnIndex) partitions() []TopicPartition {
	tps := make([]TopicPartition, 0, len(x.log))
	for tp := range x.log {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareTopicPartition)
	return tps
}

func compareTopicPartition(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return compareInt64(int64(a.Partition), int64(b.Partition))
}
