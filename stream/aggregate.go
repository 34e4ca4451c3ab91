package stream

import (
	"fmt"
	"time"
)

// Aggregate folds each key's records into a value kept in the named store: init gives the
// value before a key's first record, fn the next one. The table's stream emits every new
// value. Records with a nil key or value are skipped, as Kafka Streams' KStreamAggregate
// skips them. The store is changelogged to "<app-id>-<store>-changelog".
func Aggregate[K, V, A any](g Grouped[K, V], store string, init func() A, fn func(K, V, A) A, aggCodec Codec[A]) Table[K, A] {
	t := g.s.t
	name := "aggregate-" + store
	keyCodec := g.keyCodec
	t.AddProcessor(name, func() Processor {
		return &aggregateProcessor[K, V, A]{store: store, init: init, fn: fn, keyCodec: keyCodec, aggCodec: aggCodec}
	}, g.s.node)
	t.AddStore(store, name)
	return Table[K, A]{t, name, store, keyCodec, aggCodec}
}

// Count counts each key's records.
func Count[K, V any](g Grouped[K, V], store string) Table[K, int64] {
	return Aggregate(g, store, func() int64 { return 0 }, func(_ K, _ V, n int64) int64 { return n + 1 }, Int64())
}

// Reduce combines each key's values with fn; a key's first value is kept as it is.
func Reduce[K, V any](g Grouped[K, V], store string, fn func(acc, v V) V) Table[K, V] {
	t := Aggregate(g, store, func() *reduceState[V] { return &reduceState[V]{} },
		func(_ K, v V, acc *reduceState[V]) *reduceState[V] {
			if !acc.Set {
				return &reduceState[V]{V: v, Set: true}
			}
			return &reduceState[V]{V: fn(acc.V, v), Set: true}
		}, reduceCodec[V]{g.valueCodec})
	return Table[K, V]{t.t, valuesOf(t), t.store, g.keyCodec, g.valueCodec}
}

type reduceState[V any] struct {
	V   V
	Set bool
}

// reduceCodec stores a reduce's accumulator as the plain value, so the changelog of a
// reduce holds what a reader of the topic expects: the current value per key.
type reduceCodec[V any] struct{ c Codec[V] }

func (r reduceCodec[V]) Encode(s *reduceState[V]) ([]byte, error) { return r.c.Encode(s.V) }
func (r reduceCodec[V]) Decode(b []byte) (*reduceState[V], error) {
	v, err := r.c.Decode(b)
	if err != nil {
		return nil, err
	}
	return &reduceState[V]{V: v, Set: true}, nil
}

// valuesOf adds a node that unwraps reduceState for the table's downstream.
func valuesOf[K, V any](tb Table[K, *reduceState[V]]) string {
	return stateless(tb.t, "reduce-value", tb.node, func(ctx ProcessorContext, rec Record) error {
		if s, ok := rec.Value.(*reduceState[V]); ok {
			rec.Value = s.V
		}
		return ctx.Forward(rec)
	})
}

// maxCached bounds an aggregation's write cache (keys per task); a full cache flushes.
const maxCached = 10000

// aggregateProcessor folds records into a write cache, as Kafka Streams' caching store
// does: between commits a key's updates collapse into its latest value, which reaches the
// store, the changelog and the children once, at the commit (or when the cache is full).
// A hot key updated a thousand times per commit costs one changelog and one output record.
type aggregateProcessor[K, V, A any] struct {
	store    string
	init     func() A
	fn       func(K, V, A) A
	keyCodec Codec[K]
	aggCodec Codec[A]
	kv       TypedStore[K, A]
	ctx      ProcessorContext

	cache map[string]*cachedAggregate[K, A]
	order []string // cache keys in first-update order: flushes keep the update order
}

type cachedAggregate[K, A any] struct {
	key K
	acc A
	ts  time.Time
	hdr []Header
}

func (p *aggregateProcessor[K, V, A]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.store)
	if err != nil {
		return err
	}
	p.ctx, p.kv = ctx, TypedStore[K, A]{s, p.keyCodec, p.aggCodec}
	p.cache = map[string]*cachedAggregate[K, A]{}
	return nil
}

func (p *aggregateProcessor[K, V, A]) Process(rec Record) error {
	if rec.Key == nil || rec.Value == nil {
		return nil
	}
	k, ok := rec.Key.(K)
	if !ok {
		return fmt.Errorf("aggregate %s: key of type %T", p.store, rec.Key)
	}
	v, ok := rec.Value.(V)
	if !ok {
		return fmt.Errorf("aggregate %s: value of type %T", p.store, rec.Value)
	}
	kb, err := p.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("aggregate %s: encode key: %w", p.store, err)
	}
	entry := p.cache[string(kb)]
	if entry == nil {
		acc, found, err := p.kv.Get(k)
		if err != nil {
			return err
		}
		if !found {
			acc = p.init()
		}
		entry = &cachedAggregate[K, A]{key: k, acc: acc}
		p.cache[string(kb)] = entry
		p.order = append(p.order, string(kb))
	}
	entry.acc, entry.ts, entry.hdr = p.fn(k, v, entry.acc), rec.Timestamp, rec.Headers
	if len(p.cache) >= maxCached {
		return p.Flush()
	}
	return nil
}

// Flush writes the cached values to the store (and so the changelog) and passes them on.
func (p *aggregateProcessor[K, V, A]) Flush() error {
	for _, key := range p.order {
		e := p.cache[key]
		if err := p.kv.Put(e.key, e.acc); err != nil {
			return err
		}
		if err := p.ctx.Forward(Record{Key: e.key, Value: e.acc, Timestamp: e.ts, Headers: e.hdr}); err != nil {
			return err
		}
	}
	clear(p.cache)
	p.order = p.order[:0]
	return nil
}

func (p *aggregateProcessor[K, V, A]) Close() error { return nil }
