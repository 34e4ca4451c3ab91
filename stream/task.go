package stream

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BadRecordPolicy says what a task does with an input record whose key or value does not
// decode (Kafka Streams' DeserializationExceptionHandler: LogAndFail, LogAndContinue, and
// KIP-1034's dead-letter queue).
type BadRecordPolicy int

const (
	// BadRecordFail stops the application with an error wrapping ErrBadRecord.
	BadRecordFail BadRecordPolicy = iota
	// BadRecordSkip drops the record and counts it.
	BadRecordSkip
	// BadRecordDeadLetter writes the record, unchanged, to Config.DeadLetterTopic with the
	// error and its origin in headers, and goes on.
	BadRecordDeadLetter
)

// ErrBadRecord is wrapped by the error a task returns for an input record it cannot decode
// under BadRecordFail.
var ErrBadRecord = errors.New("record does not decode")

// Dead-letter headers, named as KIP-1034 names them so tools that read Kafka Streams'
// dead-letter records read ours (org.apache.kafka.streams.errors.internals.ExceptionHandlerUtils).
const (
	HeaderErrorMessage   = "__streams.errors.message"
	HeaderErrorTopic     = "__streams.errors.topic"
	HeaderErrorPartition = "__streams.errors.partition"
	HeaderErrorOffset    = "__streams.errors.offset"
)

// sender is where a task's records go: the runtime's Kafka client, or the test driver.
// done runs once the record is acknowledged (r.Offset set) or failed.
type sender interface {
	send(r *kgo.Record, done func(r *kgo.Record, err error))
}

type taskID struct {
	sub       int
	partition int32
}

func (id taskID) String() string { return fmt.Sprintf("%d_%d", id.sub, id.partition) }

// taskConfig is what every task of an application shares.
type taskConfig struct {
	appID      string
	topology   *Topology
	db         *stateDB
	out        sender
	policy     BadRecordPolicy
	deadLetter string
	now        func() time.Time
	metrics    *metrics // nil under Local
}

// task runs one subtopology on one partition: it owns a processor instance per node, the
// stores' slices for its partition, and the Pebble batch that holds its writes until the
// next commit.
type task struct {
	id  taskID
	cfg *taskConfig
	sub *subtopology

	batch   *pebble.Batch
	nodes   []*taskNode
	byName  map[string]*taskNode
	sources map[string]*taskNode // by resolved topic
	stores  map[string]*taskStore

	streamTime  time.Time
	punctuators []*punctuator

	// the input record being processed, for ProcessorContext and changelog timestamps
	curTopic     string
	curOffset    int64
	curTimestamp time.Time

	skipped int64

	mu            sync.Mutex
	changelogNext map[string]int64 // store → offset after its last acknowledged changelog record
	sendErr       error
}

func newTask(cfg *taskConfig, sub *subtopology, partition int32) (*task, error) {
	t := &task{
		id: taskID{sub.id, partition}, cfg: cfg, sub: sub,
		batch:  cfg.db.db.NewIndexedBatch(),
		byName: map[string]*taskNode{}, sources: map[string]*taskNode{}, stores: map[string]*taskStore{},
		curOffset: -1, changelogNext: map[string]int64{},
	}
	for _, s := range sub.stores {
		t.stores[s] = &taskStore{name: s, prefix: storePrefix('d', s, partition), task: t}
	}
	for _, name := range sub.nodes {
		n := cfg.topology.nodes[name]
		tn := &taskNode{n: n, task: t}
		t.nodes = append(t.nodes, tn)
		t.byName[name] = tn
		if n.kind == sourceNode {
			for _, topic := range n.sourceTopics(cfg.appID) {
				t.sources[topic] = tn
			}
		}
	}
	for _, tn := range t.nodes {
		for _, c := range tn.n.children {
			tn.children = append(tn.children, t.byName[c])
		}
	}
	for _, tn := range t.nodes {
		if tn.n.kind != processorNode {
			continue
		}
		tn.proc = tn.n.newProcessor()
		if err := tn.proc.Init(tn); err != nil {
			t.close()
			return nil, fmt.Errorf("task %s: init %s: %w", t.id, tn.n.name, err)
		}
	}
	return t, nil
}

// process runs one input record through the subtopology.
func (t *task) process(r *kgo.Record) error {
	src, ok := t.sources[r.Topic]
	if !ok {
		return fmt.Errorf("task %s: record from topic %s it does not read", t.id, r.Topic)
	}
	key, err := src.n.keyCodec.decode(r.Key)
	if err == nil {
		var value any
		value, err = src.n.valueCodec.decode(r.Value)
		if err == nil {
			return t.processDecoded(src, r, key, value)
		}
		err = fmt.Errorf("value: %w", err)
	} else {
		err = fmt.Errorf("key: %w", err)
	}
	return t.badRecord(r, err)
}

func (t *task) processDecoded(src *taskNode, r *kgo.Record, key, value any) error {
	if r.Timestamp.After(t.streamTime) {
		t.streamTime = r.Timestamp
	}
	t.curTopic, t.curOffset, t.curTimestamp = r.Topic, r.Offset, r.Timestamp
	rec := Record{Key: key, Value: value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
	}
	err := src.Forward(rec)
	t.curTopic, t.curOffset = "", -1
	if err != nil {
		return fmt.Errorf("task %s: %s offset %d: %w", t.id, r.Topic, r.Offset, err)
	}
	return t.punctuate(StreamTime, t.streamTime)
}

func (t *task) badRecord(r *kgo.Record, cause error) error {
	if t.cfg.metrics != nil && t.cfg.policy != BadRecordFail {
		t.cfg.metrics.badRecord.WithLabelValues(t.id.String()).Inc()
	}
	switch t.cfg.policy {
	case BadRecordSkip:
		t.skipped++
		return nil
	case BadRecordDeadLetter:
		t.skipped++
		dl := &kgo.Record{Topic: t.cfg.deadLetter, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
			Headers: append(append([]kgo.RecordHeader(nil), r.Headers...),
				kgo.RecordHeader{Key: HeaderErrorMessage, Value: []byte(cause.Error())},
				kgo.RecordHeader{Key: HeaderErrorTopic, Value: []byte(r.Topic)},
				kgo.RecordHeader{Key: HeaderErrorPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
				kgo.RecordHeader{Key: HeaderErrorOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))})}
		t.cfg.out.send(dl, t.onSent)
		return nil
	default:
		return fmt.Errorf("task %s: %s partition %d offset %d: %w: %v", t.id, r.Topic, r.Partition, r.Offset, ErrBadRecord, cause)
	}
}

func (t *task) onSent(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	if t.sendErr == nil {
		t.sendErr = err
	}
	t.mu.Unlock()
}

// logChange sends a store write to the store's changelog, on the task's partition.
func (t *task) logChange(store string, key, value []byte) {
	r := &kgo.Record{Topic: ChangelogTopic(t.cfg.appID, store), Partition: t.id.partition,
		Key: append([]byte(nil), key...), Timestamp: t.curTimestamp}
	if value != nil {
		r.Value = append(make([]byte, 0, len(value)), value...) // empty stays empty, not a tombstone
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = t.cfg.now()
	}
	t.cfg.out.send(r, func(r *kgo.Record, err error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			if t.sendErr == nil {
				t.sendErr = fmt.Errorf("changelog %s: %w", r.Topic, err)
			}
			return
		}
		if r.Offset+1 > t.changelogNext[store] {
			t.changelogNext[store] = r.Offset + 1
		}
	})
}

// flush empties the processors' caches before a commit.
func (t *task) flush() error {
	for _, tn := range t.nodes {
		if f, ok := tn.proc.(Flusher); ok {
			if err := f.Flush(); err != nil {
				return fmt.Errorf("task %s: flush %s: %w", t.id, tn.n.name, err)
			}
		}
	}
	return nil
}

// commitState writes the task's batch with the changelog offsets it reflects. The caller
// has flushed every record the task sent, so each offset is final.
func (t *task) commitState() error {
	t.mu.Lock()
	err := t.sendErr
	next := make(map[string]int64, len(t.changelogNext))
	for s, n := range t.changelogNext {
		next[s] = n
	}
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("task %s: send: %w", t.id, err)
	}
	for s, n := range next {
		if err := setCheckpoint(t.batch, s, t.id.partition, n); err != nil {
			return fmt.Errorf("task %s: checkpoint %s: %w", t.id, s, err)
		}
	}
	if t.batch.Empty() {
		return nil
	}
	// NoSync: the caller syncs once for all tasks (stateDB.sync). A batch lost in a crash
	// anyway is recovered from the changelog; only the restore gets longer.
	if err := t.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("task %s: commit state: %w", t.id, err)
	}
	t.batch.Close()
	t.batch = t.cfg.db.db.NewIndexedBatch()
	return nil
}

// close closes the processors and drops writes not committed.
func (t *task) close() error {
	var first error
	for _, tn := range t.nodes {
		if tn.proc != nil {
			if err := tn.proc.Close(); err != nil && first == nil {
				first = fmt.Errorf("task %s: close %s: %w", t.id, tn.n.name, err)
			}
		}
	}
	t.batch.Close()
	return first
}

type punctuator struct {
	node     *taskNode
	interval time.Duration
	kind     PunctuationType
	next     time.Time
	fn       func(time.Time) error
}

// punctuate fires the punctuators of kind whose time has come. Like Kafka Streams'
// PunctuationSchedule, a punctuator that fell several intervals behind fires once and
// moves to the first deadline after now; a stream-time punctuator first fires on the
// task's first record.
func (t *task) punctuate(kind PunctuationType, now time.Time) error {
	if now.IsZero() {
		return nil
	}
	for _, p := range t.punctuators {
		if p.kind != kind {
			continue
		}
		if p.next.IsZero() {
			p.next = now
		}
		if now.Before(p.next) {
			continue
		}
		for !p.next.After(now) {
			p.next = p.next.Add(p.interval)
		}
		t.curTimestamp = now
		if err := p.fn(now); err != nil {
			return fmt.Errorf("task %s: punctuator of %s: %w", t.id, p.node.n.name, err)
		}
	}
	return nil
}

// taskNode is a node of one task; it is the ProcessorContext of its processor.
type taskNode struct {
	n        *node
	task     *task
	proc     Processor
	children []*taskNode
}

func (tn *taskNode) process(rec Record) error {
	switch tn.n.kind {
	case processorNode:
		return tn.proc.Process(rec)
	case sinkNode:
		return tn.sink(rec)
	default:
		return tn.Forward(rec)
	}
}

func (tn *taskNode) sink(rec Record) error {
	key, err := tn.n.keyCodec.encode(rec.Key)
	if err != nil {
		return fmt.Errorf("sink %s key: %w", tn.n.name, err)
	}
	value, err := tn.n.valueCodec.encode(rec.Value)
	if err != nil {
		return fmt.Errorf("sink %s value: %w", tn.n.name, err)
	}
	r := &kgo.Record{Topic: tn.n.sinkTopic(tn.task.cfg.appID), Key: key, Value: value, Timestamp: rec.Timestamp}
	if r.Timestamp.IsZero() {
		r.Timestamp = tn.task.cfg.now()
	}
	for _, h := range rec.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	tn.task.cfg.out.send(r, tn.task.onSent)
	return nil
}

func (tn *taskNode) Forward(rec Record) error {
	for _, c := range tn.children {
		if err := c.process(rec); err != nil {
			return err
		}
	}
	return nil
}

func (tn *taskNode) ForwardTo(child string, rec Record) error {
	for _, c := range tn.children {
		if c.n.name == child {
			return c.process(rec)
		}
	}
	return fmt.Errorf("%s has no child %q", tn.n.name, child)
}

func (tn *taskNode) Store(name string) (KeyValueStore, error) {
	if !contains(tn.n.stores, name) {
		return nil, fmt.Errorf("processor %s is not connected to store %q", tn.n.name, name)
	}
	return tn.task.stores[name], nil
}

func (tn *taskNode) Schedule(interval time.Duration, kind PunctuationType, fn func(time.Time) error) {
	p := &punctuator{node: tn, interval: interval, kind: kind, fn: fn}
	if kind == WallClockTime {
		p.next = tn.task.cfg.now().Add(interval)
	}
	tn.task.punctuators = append(tn.task.punctuators, p)
}

func (tn *taskNode) Partition() int32      { return tn.task.id.partition }
func (tn *taskNode) Topic() string         { return tn.task.curTopic }
func (tn *taskNode) Offset() int64         { return tn.task.curOffset }
func (tn *taskNode) StreamTime() time.Time { return tn.task.streamTime }
func (tn *taskNode) Now() time.Time        { return tn.task.cfg.now() }
