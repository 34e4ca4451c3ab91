package stream

import (
	"time"
)

// Record is what flows between processors. Key and Value hold decoded values (the typed
// DSL puts K and V in them); a nil Value is a tombstone, as in a compacted topic.
type Record struct {
	Key, Value any
	Timestamp  time.Time
	Headers    []Header
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Processor is a node of the processor API. Process is called once per record, in offset
// order within a task; Init before the first record with the context the processor keeps
// for forwarding, stores and punctuators; Close when the task closes (rebalance or stop).
// A processor instance belongs to one task: New in AddProcessor is called once per task.
type Processor interface {
	Init(ctx ProcessorContext) error
	Process(rec Record) error
	Close() error
}

// Flusher is implemented by processors that hold records back, such as the aggregations'
// write cache. The task calls Flush before every commit, in topology order, so what a
// processor passes on is flushed by the processors below it in the same commit.
type Flusher interface {
	Flush() error
}

// ProcessorContext is a processor's view of its task.
type ProcessorContext interface {
	// Forward passes rec to every child of the processor.
	Forward(rec Record) error
	// ForwardTo passes rec to the named child only.
	ForwardTo(child string, rec Record) error
	// Store returns a state store the processor was connected to in AddProcessor.
	Store(name string) (KeyValueStore, error)
	// Schedule calls fn every interval of stream time (StreamTime) or wall-clock time
	// (WallClockTime), with the time that triggered it. Stream time is the largest record
	// timestamp the task has seen; it advances only when records arrive.
	Schedule(interval time.Duration, kind PunctuationType, fn func(now time.Time) error)
	// Partition is the task's partition number.
	Partition() int32
	// Topic and Offset locate the input record being processed ("" and -1 in a punctuator).
	Topic() string
	Offset() int64
	// StreamTime is the largest timestamp seen by the task.
	StreamTime() time.Time
	// Now is the wall clock (the test driver's clock under streamtest).
	Now() time.Time
}

// PunctuationType says which clock drives a punctuator (Kafka Streams' PunctuationType).
type PunctuationType int

const (
	// StreamTime punctuators fire when record timestamps move past the next deadline.
	StreamTime PunctuationType = iota
	// WallClockTime punctuators fire by the system clock (the test driver's clock in
	// streamtest), whether records arrive or not.
	WallClockTime
)

// ProcessorFunc adapts a function to a Processor with no state of its own.
type ProcessorFunc func(ctx ProcessorContext, rec Record) error

type funcProcessor struct {
	fn  ProcessorFunc
	ctx ProcessorContext
}

func (p *funcProcessor) Init(ctx ProcessorContext) error { p.ctx = ctx; return nil }
func (p *funcProcessor) Process(rec Record) error        { return p.fn(p.ctx, rec) }
func (p *funcProcessor) Close() error                    { return nil }
