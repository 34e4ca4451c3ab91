package stream

import (
	"fmt"
)

// Stream is a typed record stream in a topology. Methods that keep the types are methods;
// operations that change K or V are functions (Go methods cannot add type parameters).
type Stream[K, V any] struct {
	t    *Topology
	node string
	// rekeyed says the key changed since the stream was last read from a topic: records
	// may sit on a partition their new key does not hash to, so grouping needs a repartition.
	rekeyed bool
}

// KeyValue is one output of FlatMap.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// From reads topics as a stream.
func From[K, V any](t *Topology, keyCodec Codec[K], valueCodec Codec[V], topics ...string) Stream[K, V] {
	name := t.autoName("source")
	AddSource(t, name, keyCodec, valueCodec, topics...)
	return Stream[K, V]{t: t, node: name}
}

func typed[K, V any](rec Record) (K, V) {
	k, _ := rec.Key.(K)
	v, _ := rec.Value.(V)
	return k, v
}

// stateless adds a processor that runs fn on each record.
func stateless(t *Topology, op string, parent string, fn ProcessorFunc) string {
	name := t.autoName(op)
	t.AddProcessor(name, func() Processor { return &funcProcessor{fn: fn} }, parent)
	return name
}

// Filter keeps the records for which keep is true.
func (s Stream[K, V]) Filter(keep func(K, V) bool) Stream[K, V] {
	name := stateless(s.t, "filter", s.node, func(ctx ProcessorContext, rec Record) error {
		if k, v := typed[K, V](rec); keep(k, v) {
			return ctx.Forward(rec)
		}
		return nil
	})
	return Stream[K, V]{s.t, name, s.rekeyed}
}

// Peek calls fn on each record and passes it on unchanged.
func (s Stream[K, V]) Peek(fn func(K, V)) Stream[K, V] {
	name := stateless(s.t, "peek", s.node, func(ctx ProcessorContext, rec Record) error {
		fn(typed[K, V](rec))
		return ctx.Forward(rec)
	})
	return Stream[K, V]{s.t, name, s.rekeyed}
}

// Merge interleaves two streams of the same types. Both must come from the same topology;
// their inputs then run in the same task, so their topics must be co-partitioned.
func (s Stream[K, V]) Merge(other Stream[K, V]) Stream[K, V] {
	if other.t != s.t {
		s.t.fail(fmt.Errorf("merge: streams of different topologies"))
		return s
	}
	name := s.t.autoName("merge")
	s.t.AddProcessor(name, func() Processor {
		return &funcProcessor{fn: func(ctx ProcessorContext, rec Record) error { return ctx.Forward(rec) }}
	}, s.node, other.node)
	return Stream[K, V]{s.t, name, s.rekeyed || other.rekeyed}
}

// Branch splits the stream: a record goes to the first branch whose predicate is true
// (Kafka Streams' split().branch()), and is dropped when none is.
func (s Stream[K, V]) Branch(predicates ...func(K, V) bool) []Stream[K, V] {
	name := s.t.autoName("branch")
	children := make([]string, len(predicates))
	for i := range predicates {
		children[i] = fmt.Sprintf("%s-%d", name, i)
	}
	s.t.AddProcessor(name, func() Processor {
		return &funcProcessor{fn: func(ctx ProcessorContext, rec Record) error {
			k, v := typed[K, V](rec)
			for i, p := range predicates {
				if p(k, v) {
					return ctx.ForwardTo(children[i], rec)
				}
			}
			return nil
		}}
	}, s.node)
	out := make([]Stream[K, V], len(predicates))
	for i, child := range children {
		s.t.AddProcessor(child, func() Processor {
			return &funcProcessor{fn: func(ctx ProcessorContext, rec Record) error { return ctx.Forward(rec) }}
		}, name)
		out[i] = Stream[K, V]{s.t, child, s.rekeyed}
	}
	return out
}

// To writes the stream to topic, partitioned by murmur2 of the encoded key as Kafka's
// default partitioner does, so Java consumers and Kafka Streams apps agree on placement.
func (s Stream[K, V]) To(topic string, keyCodec Codec[K], valueCodec Codec[V]) {
	AddSink(s.t, s.t.autoName("to-"+topic), topic, keyCodec, valueCodec, s.node)
}

// Process adds a processor-API node under the stream, connected to the named stores
// (added with Topology.AddStore), and returns its name for AddSink or further processors.
func (s Stream[K, V]) Process(name string, newProcessor func() Processor, stores ...string) string {
	s.t.AddProcessor(name, newProcessor, s.node)
	for _, st := range stores {
		s.t.ConnectStore(st, name)
	}
	return name
}

// Map turns each record into another; the key may change, so grouping the result needs a
// named repartition (GroupBy or Repartition).
func Map[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) (K2, V2)) Stream[K2, V2] {
	name := stateless(s.t, "map", s.node, func(ctx ProcessorContext, rec Record) error {
		k2, v2 := fn(typed[K, V](rec))
		return ctx.Forward(Record{Key: k2, Value: v2, Timestamp: rec.Timestamp, Headers: rec.Headers})
	})
	return Stream[K2, V2]{s.t, name, true}
}

// MapValues changes values and keeps keys, so no repartition is needed after it.
func MapValues[K, V, V2 any](s Stream[K, V], fn func(K, V) V2) Stream[K, V2] {
	name := stateless(s.t, "map-values", s.node, func(ctx ProcessorContext, rec Record) error {
		rec.Value = fn(typed[K, V](rec))
		return ctx.Forward(rec)
	})
	return Stream[K, V2]{s.t, name, s.rekeyed}
}

// FlatMap turns each record into zero or more.
func FlatMap[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) []KeyValue[K2, V2]) Stream[K2, V2] {
	name := stateless(s.t, "flat-map", s.node, func(ctx ProcessorContext, rec Record) error {
		for _, kv := range fn(typed[K, V](rec)) {
			if err := ctx.Forward(Record{Key: kv.Key, Value: kv.Value, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
				return err
			}
		}
		return nil
	})
	return Stream[K2, V2]{s.t, name, true}
}

// SelectKey gives each record a new key computed from it.
func SelectKey[K, V, K2 any](s Stream[K, V], fn func(K, V) K2) Stream[K2, V] {
	name := stateless(s.t, "select-key", s.node, func(ctx ProcessorContext, rec Record) error {
		rec.Key = fn(typed[K, V](rec))
		return ctx.Forward(rec)
	})
	return Stream[K2, V]{s.t, name, true}
}

// Repartition writes the stream to the topic "<app-id>-<name>-repartition", partitioned by
// murmur2 of the key, and reads it back: after it, every key is on the partition (and so in
// the task) that owns it. The topic gets as many partitions as the largest input topic of
// the part of the topology that writes it.
func Repartition[K, V any](s Stream[K, V], name string, keyCodec Codec[K], valueCodec Codec[V]) Stream[K, V] {
	if err := validName(name); err != nil {
		s.t.fail(fmt.Errorf("repartition: %w", err))
		return s
	}
	sink := name + "-repartition-sink"
	s.t.addNode(&node{name: sink, kind: sinkNode, repartition: name, parents: []string{s.node},
		keyCodec: erase(keyCodec), valueCodec: erase(valueCodec)})
	source := name + "-repartition-source"
	s.t.addNode(&node{name: source, kind: sourceNode, repartition: name,
		keyCodec: erase(keyCodec), valueCodec: erase(valueCodec)})
	return Stream[K, V]{t: s.t, node: source}
}

// Grouped is a stream whose records are on the partitions of their keys, ready to
// aggregate.
type Grouped[K, V any] struct {
	s          Stream[K, V]
	keyCodec   Codec[K]
	valueCodec Codec[V]
}

// GroupByKey groups a stream whose keys have not changed since it was read. A re-keyed
// stream is refused (New returns the error): it needs GroupBy or Repartition, which name
// the repartition topic, because an auto-numbered name would change with the topology.
func GroupByKey[K, V any](s Stream[K, V], keyCodec Codec[K], valueCodec Codec[V]) Grouped[K, V] {
	if s.rekeyed {
		s.t.fail(fmt.Errorf("group by key after %s: the key changed, so the records must be repartitioned; use GroupBy or Repartition with a name", s.node))
	}
	return Grouped[K, V]{s, keyCodec, valueCodec}
}

// GroupBy re-keys the stream with fn and repartitions it through the topic
// "<app-id>-<name>-repartition".
func GroupBy[K, V, K2 any](s Stream[K, V], name string, fn func(K, V) K2, keyCodec Codec[K2], valueCodec Codec[V]) Grouped[K2, V] {
	return Grouped[K2, V]{Repartition(SelectKey(s, fn), name, keyCodec, valueCodec), keyCodec, valueCodec}
}

// Table is a changelog stream seen as its latest value per key, kept in a named store.
type Table[K, V any] struct {
	t          *Topology
	node       string
	store      string
	keyCodec   Codec[K]
	valueCodec Codec[V]
}

// StoreName is the name of the table's store.
func (tb Table[K, V]) StoreName() string { return tb.store }

// ToStream is the table's stream of updates: every change of a key's value, as it happens.
func (tb Table[K, V]) ToStream() Stream[K, V] {
	name := stateless(tb.t, "to-stream", tb.node, func(ctx ProcessorContext, rec Record) error { return ctx.Forward(rec) })
	return Stream[K, V]{t: tb.t, node: name}
}

// TableFrom reads a compacted topic as a table kept in store: a record sets its key, a
// tombstone (nil value) deletes it.
func TableFrom[K, V any](t *Topology, topic, store string, keyCodec Codec[K], valueCodec Codec[V]) Table[K, V] {
	source := t.autoName("source")
	AddSource(t, source, keyCodec, valueCodec, topic)
	name := "table-" + store
	t.AddProcessor(name, func() Processor {
		return &tableProcessor[K, V]{store: store, keyCodec: keyCodec, valueCodec: valueCodec}
	}, source)
	t.AddStore(store, name)
	return Table[K, V]{t, name, store, keyCodec, valueCodec}
}

type tableProcessor[K, V any] struct {
	store      string
	keyCodec   Codec[K]
	valueCodec Codec[V]
	kv         TypedStore[K, V]
	ctx        ProcessorContext
}

func (p *tableProcessor[K, V]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.store)
	if err != nil {
		return err
	}
	p.ctx, p.kv = ctx, TypedStore[K, V]{s, p.keyCodec, p.valueCodec}
	return nil
}

func (p *tableProcessor[K, V]) Process(rec Record) error {
	if rec.Key == nil {
		return nil // a table has no row for a null key (Kafka Streams drops these too)
	}
	k := rec.Key.(K)
	if rec.Value == nil {
		if err := p.kv.Delete(k); err != nil {
			return err
		}
	} else if err := p.kv.Put(k, rec.Value.(V)); err != nil {
		return err
	}
	return p.ctx.Forward(rec)
}

func (p *tableProcessor[K, V]) Close() error { return nil }
