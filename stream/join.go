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
