package cluster

import (
	"fmt"
	"sync"
	"time"
)

// Produce is one produce attempt and its outcome: acknowledged at (Partition, Offset), or
// failed with Err. A failed attempt may still have been written (the client gave up
// waiting); the checks only hold the broker to what it acknowledged.
type Produce struct {
	Producer  int
	Seq       int64
	Partition int32 // the partition the record was sent to
	Offset    int64 // valid when Err == ""
	Start     time.Time
	End       time.Time
	Err       string
}

// Value is the record value the workload writes for this attempt.
func (p Produce) Value() string { return RecordValue(p.Producer, p.Seq) }

// Acked says whether the broker acknowledged the write.
func (p Produce) Acked() bool { return p.Err == "" }

// RecordValue is the unique value of producer's seq-th record.
func RecordValue(producer int, seq int64) string { return fmt.Sprintf("p%d-s%d", producer, seq) }

// ParseValue reads a value written by RecordValue.
func ParseValue(v string) (producer int, seq int64, ok bool) {
	n, err := fmt.Sscanf(v, "p%d-s%d", &producer, &seq)
	return producer, seq, err == nil && n == 2 && RecordValue(producer, seq) == v
}

// ProducerID is the idempotent producer id and epoch one producer held at a moment.
type ProducerID struct {
	Producer int
	ID       int64
	Epoch    int16
	At       time.Time
}

func (p ProducerID) String() string {
	return fmt.Sprintf("p%d: id %d epoch %d", p.Producer, p.ID, p.Epoch)
}

// Read is one record a consumer saw.
type Read struct {
	Partition int32
	Offset    int64
	Value     string
	At        time.Time
}

// Fault is one injected fault: when it began, when healing began and when it was healed.
// BelowMinISR says that while it lasted fewer replicas than min.insync.replicas were up,
// so no write may be acknowledged between At and HealStart.
type Fault struct {
	Name        string
	At          time.Time
	HealStart   time.Time
	Healed      time.Time
	BelowMinISR bool
}

// History is everything a scenario did and saw. Reads are what consumers saw while the
// workload and faults ran; Final is the full read of every partition after recovery, and
// FinalEnds the end offsets that full read reached, per partition.
type History struct {
	mu        sync.Mutex
	Produces  []Produce
	Reads     []Read
	Final     []Read
	FinalEnds map[int32]int64
	Faults    []Fault
	Views     []View // each node's view of partition leadership, as it changed
	// ProducerIDs are samples of the producer id each producer held.
	ProducerIDs []ProducerID
	// Divergence is where replicas' logs on disk held different batches below the end
	// offsets of the final read (see Divergence), found after it.
	Divergence []Anomaly
	End        time.Time // when the workload stopped starting writes
}

// AddProduce records a produce outcome; safe for concurrent use.
func (h *History) AddProduce(p Produce) { appendLocked(&h.mu, &h.Produces, p) }

// AddRead records what a consumer saw; safe for concurrent use.
func (h *History) AddRead(r Read) { appendLocked(&h.mu, &h.Reads, r) }

// appendLocked appends v to *list while holding mu: workload goroutines record into one
// history at once.
func appendLocked[T any](mu *sync.Mutex, list *[]T, v T) {
	mu.Lock()
	*list = append(*list, v)
	mu.Unlock()
}

// BeginFault records a fault starting now and returns its index for HealFault.
func (h *History) BeginFault(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Faults = append(h.Faults, Fault{Name: name, At: time.Now()})
	return len(h.Faults) - 1
}

// HealStarting records that healing fault i begins now.
func (h *History) HealStarting(i int) {
	h.mu.Lock()
	h.Faults[i].HealStart = time.Now()
	h.mu.Unlock()
}

// MarkBelowMinISR records that fault i leaves fewer replicas up than min.insync.replicas.
func (h *History) MarkBelowMinISR(i int) {
	h.mu.Lock()
	h.Faults[i].BelowMinISR = true
	h.mu.Unlock()
}

// HealFault records that fault i was healed now.
func (h *History) HealFault(i int) {
	h.mu.Lock()
	h.Faults[i].Healed = time.Now()
	h.mu.Unlock()
}

// Acked counts acknowledged produces.
func (h *History) Acked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.Produces {
		if p.Acked() {
			n++
		}
	}
	return n
}
