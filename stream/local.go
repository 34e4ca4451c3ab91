package stream

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Local runs a topology in-process with no broker: records are piped in, run through the
// same tasks, stores and codecs as under Run, and what the tasks write is collected. A
// record written to a repartition topic is read back at once. Package streamtest wraps it
// for tests; Local is exported so that other harnesses can drive a topology too.
type Local struct {
	cfg    LocalConfig
	t      *Topology
	subs   []*subtopology
	layout *layout
	db     *stateDB
	tcfg   *taskConfig

	topicSub map[string]int
	tasks    map[taskID]*task
	offsets  map[string]map[int32]int64 // next offset per topic partition
	queue    []*kgo.Record              // repartition records still to process
	outputs  []*kgo.Record
	keyed    kgo.Partitioner
}

// LocalConfig configures a Local.
type LocalConfig struct {
	// AppID prefixes internal topic names, as under Run. Default "app".
	AppID string
	// Partitions are the partition counts of the input topics; a topic not listed has 1.
	Partitions map[string]int32
	// OnBadRecord and DeadLetterTopic as in Config.
	OnBadRecord     BadRecordPolicy
	DeadLetterTopic string
	// Now is the wall clock (punctuators, timestamps of records without one). Default
	// time.Now.
	Now func() time.Time
}

// NewLocal builds the tasks' environment: an in-memory Pebble database and the topic
// layout Run would compute.
func NewLocal(t *Topology, cfg LocalConfig) (*Local, error) {
	if err := t.Err(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if cfg.AppID == "" {
		cfg.AppID = "app"
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = cfg.AppID + "-dead-letter"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Local{cfg: cfg, t: t, subs: t.subtopologies(), topicSub: map[string]int{}, tasks: map[taskID]*task{},
		offsets: map[string]map[int32]int64{}, keyed: kgo.StickyKeyPartitioner(nil)}
	existing := map[string]int32{}
	for _, st := range l.subs {
		for _, name := range st.nodes {
			n := t.nodes[name]
			if n.kind != sourceNode {
				continue
			}
			for _, topic := range n.sourceTopics(cfg.AppID) {
				l.topicSub[topic] = st.id
				if n.repartition == "" {
					existing[topic] = 1
					if c, ok := cfg.Partitions[topic]; ok {
						existing[topic] = c
					}
				}
			}
		}
	}
	layout, err := planLayout(t, cfg.AppID, l.subs, existing)
	if err != nil {
		return nil, err
	}
	for topic, c := range layout.internal {
		existing[topic] = c
	}
	layout.internal = existing // every topic's count, for partitioning
	l.layout = layout
	db, err := openStateDB("", vfs.NewMem(), 8<<20)
	if err != nil {
		return nil, err
	}
	l.db = db
	l.tcfg = &taskConfig{appID: cfg.AppID, topology: t, db: db, out: l, policy: cfg.OnBadRecord,
		deadLetter: cfg.DeadLetterTopic, now: cfg.Now}
	return l, nil
}

// send is the tasks' producer: it gives the record the next offset of its partition and
// acknowledges it at once.
func (l *Local) send(r *kgo.Record, done func(*kgo.Record, error)) {
	if !l.layout.changelogs[r.Topic] {
		r.Partition = l.partition(r.Topic, r.Key)
	}
	r.Offset = l.nextOffset(r.Topic, r.Partition)
	l.outputs = append(l.outputs, r)
	if l.layout.repartitions[r.Topic] {
		l.queue = append(l.queue, r)
	}
	done(r, nil)
}

func (l *Local) partition(topic string, key []byte) int32 {
	n, ok := l.layout.internal[topic]
	if !ok || n < 1 {
		n = 1
	}
	if key == nil {
		return 0
	}
	return int32(l.keyed.ForTopic(topic).Partition(&kgo.Record{Key: key}, int(n)))
}

func (l *Local) nextOffset(topic string, p int32) int64 {
	m := l.offsets[topic]
	if m == nil {
		m = map[int32]int64{}
		l.offsets[topic] = m
	}
	o := m[p]
	m[p] = o + 1
	return o
}

// Pipe processes one record of an input topic, placed on the partition murmur2 of its key
// chooses, and then every repartition record it causes. The tasks commit after it, so
// stores read afterwards reflect it.
func (l *Local) Pipe(topic string, key, value []byte, ts time.Time, headers []Header) error {
	sub, ok := l.topicSub[topic]
	if !ok {
		return fmt.Errorf("topology reads no topic %q", topic)
	}
	if l.layout.repartitions[topic] {
		return fmt.Errorf("topic %q is internal", topic)
	}
	if ts.IsZero() {
		ts = l.cfg.Now()
	}
	r := &kgo.Record{Topic: topic, Key: key, Value: value, Timestamp: ts}
	for _, h := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	r.Partition = l.partition(topic, key)
	r.Offset = l.nextOffset(topic, r.Partition)
	if err := l.processOne(sub, r); err != nil {
		return err
	}
	for len(l.queue) > 0 {
		next := l.queue[0]
		l.queue = l.queue[1:]
		if err := l.processOne(l.topicSub[next.Topic], next); err != nil {
			return err
		}
	}
	return l.commit()
}

func (l *Local) task(sub int, p int32) (*task, error) {
	id := taskID{sub, p}
	if t := l.tasks[id]; t != nil {
		return t, nil
	}
	t, err := newTask(l.tcfg, l.subs[sub], p)
	if err != nil {
		return nil, err
	}
	l.tasks[id] = t
	return t, nil
}

func (l *Local) processOne(sub int, r *kgo.Record) error {
	t, err := l.task(sub, r.Partition)
	if err != nil {
		return err
	}
	return t.process(r)
}

func (l *Local) commit() error {
	for _, id := range l.taskIDs() {
		if err := l.tasks[id].flush(); err != nil {
			return err
		}
	}
	for len(l.queue) > 0 { // what the flushes wrote to repartition topics
		next := l.queue[0]
		l.queue = l.queue[1:]
		if err := l.processOne(l.topicSub[next.Topic], next); err != nil {
			return err
		}
		if err := l.tasks[taskID{l.topicSub[next.Topic], next.Partition}].flush(); err != nil {
			return err
		}
	}
	for _, t := range l.tasks {
		if err := t.commitState(); err != nil {
			return err
		}
	}
	return nil
}

// AdvanceWallClock fires the wall-clock punctuators due at now (the caller's clock has
// moved to now) and processes what they write.
func (l *Local) AdvanceWallClock(now time.Time) error {
	for _, id := range l.taskIDs() {
		if err := l.tasks[id].punctuate(WallClockTime, now); err != nil {
			return err
		}
	}
	for len(l.queue) > 0 {
		next := l.queue[0]
		l.queue = l.queue[1:]
		if err := l.processOne(l.topicSub[next.Topic], next); err != nil {
			return err
		}
	}
	return l.commit()
}

func (l *Local) taskIDs() []taskID {
	ids := make([]taskID, 0, len(l.tasks))
	for id := range l.tasks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].sub < ids[j].sub || ids[i].sub == ids[j].sub && ids[i].partition < ids[j].partition
	})
	return ids
}

// Output is a record a task wrote.
type Output struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
	Headers   []Header
}

// TakeOutputs returns the records written since the last call, in the order written;
// changelog and repartition records included.
func (l *Local) TakeOutputs() []Output {
	out := make([]Output, 0, len(l.outputs))
	for _, r := range l.outputs {
		o := Output{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		for _, h := range r.Headers {
			o.Headers = append(o.Headers, Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, o)
	}
	l.outputs = l.outputs[:0]
	return out
}

// ErrNoStore is returned for a store the topology does not have.
var ErrNoStore = errors.New("no such store")

// StoreGet reads key from store, on whichever partition holds it.
func (l *Local) StoreGet(store string, key []byte) ([]byte, error) {
	var found []byte
	err := l.eachStore(store, func(s *taskStore) error {
		v, err := s.Get(key)
		if v != nil {
			found = v
		}
		return err
	})
	return found, err
}

// StoreRange calls fn for every key of store, partition by partition.
func (l *Local) StoreRange(store string, fn func(key, value []byte) bool) error {
	return l.eachStore(store, func(s *taskStore) error { return s.Range(nil, nil, fn) })
}

func (l *Local) eachStore(store string, fn func(*taskStore) error) error {
	if _, ok := l.t.stores[store]; !ok {
		return fmt.Errorf("%w: %q", ErrNoStore, store)
	}
	for _, id := range l.taskIDs() {
		if s := l.tasks[id].stores[store]; s != nil {
			if err := fn(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// Skipped is how many bad input records were skipped or sent to the dead-letter topic.
func (l *Local) Skipped() int64 {
	var n int64
	for _, t := range l.tasks {
		n += t.skipped
	}
	return n
}

// Close closes the tasks and the database.
func (l *Local) Close() error {
	var first error
	for _, id := range l.taskIDs() {
		if err := l.tasks[id].close(); err != nil && first == nil {
			first = err
		}
	}
	if err := l.db.close(); err != nil && first == nil {
		first = err
	}
	return first
}
