package stream

import (
	"encoding/binary"
	"fmt"
	"time"
)

// JoinWindows bounds a stream–stream join: records of the two sides join when their
// timestamps are at most Within apart. Each side's records are kept for Within plus Grace of
// stream time, so a record up to Grace late still finds its partners; a later one is
// dropped, as Kafka Streams' KStreamKStreamJoin drops it.
type JoinWindows struct {
	Within, Grace time.Duration
}

// JoinStreams joins two streams on key and time (an inner join): each record is joined with
// every record of the other side that has the same key and a timestamp within w.Within of
// its own, as soon as both have arrived. The sides are kept in the stores "<name>-left" and
// "<name>-right" (changelogged like every store), and their topics must be co-partitioned.
// A joined record carries the later of the two timestamps.
func JoinStreams[K, V, W, R any](left Stream[K, V], right Stream[K, W], name string, w JoinWindows, fn func(K, V, W) R,
	keyCodec Codec[K], leftCodec Codec[V], rightCodec Codec[W]) Stream[K, R] {
	t := left.t
	switch {
	case right.t != t:
		t.fail(fmt.Errorf("join %s: the streams belong to different topologies", name))
		return Stream[K, R]{t: t, node: left.node}
	case left.rekeyed || right.rekeyed:
		t.fail(fmt.Errorf("join %s: a side's key changed, so it must be repartitioned first (Repartition)", name))
	case w.Within < 0 || w.Grace < 0:
		t.fail(fmt.Errorf("join %s: negative window", name))
	}
	leftStore, rightStore := name+"-left", name+"-right"
	retention := (w.Within + w.Grace).Milliseconds()
	within := w.Within.Milliseconds()
	t.AddProcessor(name+"-left", func() Processor {
		return &streamJoinSide[K, V, W, R]{own: leftStore, other: rightStore, within: within, retention: retention,
			keyCodec: keyCodec, ownCodec: leftCodec, otherCodec: rightCodec, join: fn}
	}, left.node)
	t.AddProcessor(name+"-right", func() Processor {
		return &streamJoinSide[K, W, V, R]{own: rightStore, other: leftStore, within: within, retention: retention,
			keyCodec: keyCodec, ownCodec: rightCodec, otherCodec: leftCodec, join: func(k K, wv W, v V) R { return fn(k, v, wv) }}
	}, right.node)
	t.AddStore(leftStore, name+"-left", name+"-right")
	t.AddStore(rightStore, name+"-left", name+"-right")
	t.AddProcessor(name, func() Processor {
		return &funcProcessor{fn: func(ctx ProcessorContext, rec Record) error { return ctx.Forward(rec) }}
	}, name+"-left", name+"-right")
	return Stream[K, R]{t: t, node: name}
}

// Join store layout, two key spaces per side's store:
//
//	0x00 | len(key) u32 | key | ts u64 | offset u64 → value   (a key's records in time order)
//	0x01 | ts u64 | len(key) u32 | key | offset u64 → 1       (all records in time order, to expire)
//
// The input offset tells apart records of one key with the same timestamp.
func joinKey(kind byte, key []byte, ts, offset int64) []byte {
	b := []byte{kind}
	if kind == 0 {
		b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
		b = append(b, key...)
		b = binary.BigEndian.AppendUint64(b, uint64(ts))
	} else {
		b = binary.BigEndian.AppendUint64(b, uint64(ts))
		b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
		b = append(b, key...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

type streamJoinSide[K, V, W, R any] struct {
	own, other        string
	within, retention int64
	keyCodec          Codec[K]
	ownCodec          Codec[V]
	otherCodec        Codec[W]
	join              func(K, V, W) R

	ctx            ProcessorContext
	ownKV, otherKV KeyValueStore
	observed       int64
	late           int64
}

func (p *streamJoinSide[K, V, W, R]) Init(ctx ProcessorContext) error {
	own, err := ctx.Store(p.own)
	if err != nil {
		return err
	}
	other, err := ctx.Store(p.other)
	if err != nil {
		return err
	}
	p.ctx, p.ownKV, p.otherKV = ctx, own, other
	return nil
}

func (p *streamJoinSide[K, V, W, R]) Process(rec Record) error {
	if rec.Key == nil || rec.Value == nil {
		return nil
	}
	k, v := rec.Key.(K), rec.Value.(V)
	kb, err := p.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("join %s: encode key: %w", p.own, err)
	}
	ts := rec.Timestamp.UnixMilli()
	// Both sides run in one task, so the task's stream time is the join's clock, as Kafka
	// Streams' KStreamKStreamJoin shares one time tracker between its two sides.
	p.observed = p.ctx.StreamTime().UnixMilli()
	if ts < p.observed-p.retention {
		p.late++
		return nil
	}
	// The other side's records of this key within [ts-within, ts+within].
	from := joinKey(0, kb, max(ts-p.within, 0), 0)
	to := joinKey(0, kb, ts+p.within+1, 0)
	var partners []struct {
		ts    int64
		value []byte
	}
	if err := p.otherKV.Range(from, to, func(key, value []byte) bool {
		pts := int64(binary.BigEndian.Uint64(key[len(key)-16:]))
		partners = append(partners, struct {
			ts    int64
			value []byte
		}{pts, append([]byte(nil), value...)})
		return true
	}); err != nil {
		return err
	}
	for _, o := range partners {
		w, err := p.otherCodec.Decode(o.value)
		if err != nil {
			return fmt.Errorf("join %s: decode stored value: %w", p.other, err)
		}
		out := Record{Key: k, Value: p.join(k, v, w), Timestamp: time.UnixMilli(max(ts, o.ts)).UTC(), Headers: rec.Headers}
		if err := p.ctx.Forward(out); err != nil {
			return err
		}
	}
	vb, err := p.ownCodec.Encode(v)
	if err != nil {
		return fmt.Errorf("join %s: encode value: %w", p.own, err)
	}
	offset := p.ctx.Offset()
	if err := p.ownKV.Put(joinKey(0, kb, ts, offset), vb); err != nil {
		return err
	}
	if err := p.ownKV.Put(joinKey(1, kb, ts, offset), []byte{1}); err != nil {
		return err
	}
	if err := p.expire(p.ownKV); err != nil {
		return err
	}
	return p.expire(p.otherKV)
}

// expire drops a side's records that no future record can join.
func (p *streamJoinSide[K, V, W, R]) expire(kv KeyValueStore) error {
	cutoff := p.observed - p.retention
	if cutoff <= 0 {
		return nil
	}
	var old [][]byte
	if err := kv.Range([]byte{1}, binary.BigEndian.AppendUint64([]byte{1}, uint64(cutoff)), func(key, _ []byte) bool {
		old = append(old, append([]byte(nil), key...))
		return true
	}); err != nil {
		return err
	}
	for _, key := range old {
		ts := int64(binary.BigEndian.Uint64(key[1:]))
		n := binary.BigEndian.Uint32(key[9:])
		kb := key[13 : 13+n]
		offset := int64(binary.BigEndian.Uint64(key[13+n:]))
		if err := kv.Delete(joinKey(0, kb, ts, offset)); err != nil {
			return err
		}
		if err := kv.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

func (p *streamJoinSide[K, V, W, R]) Close() error { return nil }
