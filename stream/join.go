package stream

import "fmt"

// JoinTable joins each stream record with the table's current value for its key (an inner
// join: a record whose key the table lacks is dropped). Table updates emit nothing; only
// stream records do, as in Kafka Streams' KStream#join(KTable). The stream and the table's
// topic must be co-partitioned (Run checks it), and a re-keyed stream must be repartitioned
// first (New refuses it otherwise), or records would meet the wrong partition of the table.
func JoinTable[K, V, T, R any](s Stream[K, V], tb Table[K, T], fn func(K, V, T) R) Stream[K, R] {
	return joinTable(s, tb, "join", func(k K, v V, t T, found bool) (R, bool) {
		if !found {
			var zero R
			return zero, false
		}
		return fn(k, v, t), true
	})
}

// LeftJoinTable is JoinTable that keeps records whose key the table lacks: fn gets found
// false and the zero T for them.
func LeftJoinTable[K, V, T, R any](s Stream[K, V], tb Table[K, T], fn func(k K, v V, t T, found bool) R) Stream[K, R] {
	return joinTable(s, tb, "left-join", func(k K, v V, t T, found bool) (R, bool) { return fn(k, v, t, found), true })
}

func joinTable[K, V, T, R any](s Stream[K, V], tb Table[K, T], op string, fn func(K, V, T, bool) (R, bool)) Stream[K, R] {
	if s.rekeyed {
		s.t.fail(fmt.Errorf("%s with table %s after %s: the key changed, so the stream must be repartitioned first (Repartition)", op, tb.store, s.node))
	}
	if tb.t != s.t {
		s.t.fail(fmt.Errorf("%s: the stream and table %s belong to different topologies", op, tb.store))
		return Stream[K, R]{t: s.t, node: s.node}
	}
	name := s.t.autoName(op + "-" + tb.store)
	store, keyCodec, valueCodec := tb.store, tb.keyCodec, tb.valueCodec
	s.t.AddProcessor(name, func() Processor {
		return &joinProcessor[K, V, T, R]{store: store, keyCodec: keyCodec, valueCodec: valueCodec, fn: fn}
	}, s.node)
	s.t.ConnectStore(store, name)
	return Stream[K, R]{t: s.t, node: name}
}

type joinProcessor[K, V, T, R any] struct {
	store      string
	keyCodec   Codec[K]
	valueCodec Codec[T]
	fn         func(K, V, T, bool) (R, bool)
	table      TypedStore[K, T]
	ctx        ProcessorContext
}

func (p *joinProcessor[K, V, T, R]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.store)
	if err != nil {
		return err
	}
	p.ctx, p.table = ctx, TypedStore[K, T]{s, p.keyCodec, p.valueCodec}
	return nil
}

func (p *joinProcessor[K, V, T, R]) Process(rec Record) error {
	if rec.Key == nil {
		return nil // no table row can match a null key (Kafka Streams drops these)
	}
	k, v := typed[K, V](rec)
	t, found, err := p.table.Get(k)
	if err != nil {
		return fmt.Errorf("join %s: %w", p.store, err)
	}
	r, ok := p.fn(k, v, t, found)
	if !ok {
		return nil
	}
	return p.ctx.Forward(Record{Key: k, Value: r, Timestamp: rec.Timestamp, Headers: rec.Headers})
}

func (p *joinProcessor[K, V, T, R]) Close() error { return nil }

// JoinTables joins two tables on their key (an inner join): whenever either side changes,
// the result for that key is recomputed from both stores, and a key missing on either side
// (or deleted there) yields a tombstone, as Kafka Streams' KTable#join does. The result is
// not materialized: it is a stream of updates (ToStream) to write or aggregate. Both tables'
// topics must be co-partitioned.
func JoinTables[K, V, W, R any](left Table[K, V], right Table[K, W], fn func(K, V, W) R) Table[K, R] {
	t := left.t
	if right.t != t {
		t.fail(fmt.Errorf("join tables %s and %s: different topologies", left.store, right.store))
		return Table[K, R]{t: t, node: left.node}
	}
	if left.store == "" || right.store == "" {
		t.fail(fmt.Errorf("join tables: both sides need a store (a join result has none)"))
		return Table[K, R]{t: t, node: left.node}
	}
	base := t.autoName("join-" + left.store + "-" + right.store)
	leftSide, rightSide := base+"-left", base+"-right"
	lc, lv, rv := left.keyCodec, left.valueCodec, right.valueCodec
	rightStore, leftStore := right.store, left.store
	t.AddProcessor(leftSide, func() Processor {
		return &tableJoinProcessor[K, V, W, R]{other: rightStore, keyCodec: lc, otherCodec: rv,
			join: func(k K, v V, w W) R { return fn(k, v, w) }}
	}, left.node)
	t.ConnectStore(rightStore, leftSide)
	t.AddProcessor(rightSide, func() Processor {
		return &tableJoinProcessor[K, W, V, R]{other: leftStore, keyCodec: lc, otherCodec: lv,
			join: func(k K, w W, v V) R { return fn(k, v, w) }}
	}, right.node)
	t.ConnectStore(leftStore, rightSide)
	t.AddProcessor(base, func() Processor {
		return &funcProcessor{fn: func(ctx ProcessorContext, rec Record) error { return ctx.Forward(rec) }}
	}, leftSide, rightSide)
	return Table[K, R]{t: t, node: base}
}

// tableJoinProcessor handles one side's updates: it looks the key up in the other side's
// store and forwards the joined value, or a tombstone when either side has no value.
type tableJoinProcessor[K, V, W, R any] struct {
	other      string
	keyCodec   Codec[K]
	otherCodec Codec[W]
	join       func(K, V, W) R
	store      TypedStore[K, W]
	ctx        ProcessorContext
}

func (p *tableJoinProcessor[K, V, W, R]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.other)
	if err != nil {
		return err
	}
	p.ctx, p.store = ctx, TypedStore[K, W]{s, p.keyCodec, p.otherCodec}
	return nil
}

func (p *tableJoinProcessor[K, V, W, R]) Process(rec Record) error {
	if rec.Key == nil {
		return nil
	}
	k := rec.Key.(K)
	out := Record{Key: k, Timestamp: rec.Timestamp, Headers: rec.Headers}
	if rec.Value != nil {
		w, found, err := p.store.Get(k)
		if err != nil {
			return fmt.Errorf("join with %s: %w", p.other, err)
		}
		if found {
			out.Value = p.join(k, rec.Value.(V), w)
		}
	}
	return p.ctx.Forward(out)
}

func (p *tableJoinProcessor[K, V, W, R]) Close() error { return nil }
