package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// SessionWindows group a key's records into sessions: runs of records no more than gap
// apart. A record that falls within gap of two sessions merges them. A session closes when
// stream time passes its end plus grace; records for a closed session are late and dropped.
type SessionWindows struct {
	gap, grace time.Duration
	emitFinal  bool
}

// Sessions returns session windows with the given inactivity gap.
func Sessions(gap time.Duration) SessionWindows { return SessionWindows{gap: gap} }

// Grace accepts records up to d after a session's end (in stream time).
func (w SessionWindows) Grace(d time.Duration) SessionWindows { w.grace = d; return w }

// EmitFinal emits each session once, when it closes.
func (w SessionWindows) EmitFinal() SessionWindows { w.emitFinal = true; return w }

// SessionGrouped is a grouped stream cut into sessions.
type SessionGrouped[K, V any] struct {
	g Grouped[K, V]
	w SessionWindows
}

// SessionWindowedBy cuts a grouped stream into sessions.
func SessionWindowedBy[K, V any](g Grouped[K, V], w SessionWindows) SessionGrouped[K, V] {
	if w.gap <= 0 || w.grace < 0 {
		g.s.t.fail(errors.New("sessions: the gap must be positive and the grace not negative"))
	}
	return SessionGrouped[K, V]{g, w}
}

// SessionAggregate folds each session's records into the named store; merge combines the
// aggregates of two sessions that a record joins (Kafka Streams' Merger). On update the
// table's stream carries the new session, and a tombstone (nil value) for each session
// merged away; with EmitFinal, each session once it closes. The Windowed key's End is the
// timestamp of the session's last record.
func SessionAggregate[K, V, A any](sg SessionGrouped[K, V], store string, init func() A, fn func(K, V, A) A, merge func(K, A, A) A, aggCodec Codec[A]) Table[Windowed[K], A] {
	t := sg.g.s.t
	name := "session-aggregate-" + store
	keyCodec, w := sg.g.keyCodec, sg.w
	t.AddProcessor(name, func() Processor {
		return &sessionProcessor[K, V, A]{w: w, store: store, init: init, fn: fn, merge: merge, keyCodec: keyCodec, aggCodec: aggCodec}
	}, sg.g.s.node)
	t.AddStore(store, name)
	return Table[Windowed[K], A]{t, name, store, SessionWindowedCodec(keyCodec), aggCodec}
}

// SessionCount counts each session's records.
func SessionCount[K, V any](sg SessionGrouped[K, V], store string) Table[Windowed[K], int64] {
	return SessionAggregate(sg, store, func() int64 { return 0 }, func(_ K, _ V, n int64) int64 { return n + 1 },
		func(_ K, a, b int64) int64 { return a + b }, Int64())
}

// SessionWindowedCodec encodes a session key as Kafka Streams' SessionKeySchema does: the
// key's bytes, then the end and the start in milliseconds, 8 big-endian bytes each.
func SessionWindowedCodec[K any](keyCodec Codec[K]) Codec[Windowed[K]] {
	return sessionCodec[K]{keyCodec}
}

type sessionCodec[K any] struct{ c Codec[K] }

func (c sessionCodec[K]) Encode(w Windowed[K]) ([]byte, error) {
	kb, err := c.c.Encode(w.Key)
	if err != nil {
		return nil, err
	}
	kb = binary.BigEndian.AppendUint64(kb, uint64(w.End.UnixMilli()))
	return binary.BigEndian.AppendUint64(kb, uint64(w.Start.UnixMilli())), nil
}

func (c sessionCodec[K]) Decode(b []byte) (Windowed[K], error) {
	var w Windowed[K]
	if len(b) < 16 {
		return w, fmt.Errorf("session key: %d bytes, want at least 16", len(b))
	}
	k, err := c.c.Decode(b[:len(b)-16])
	if err != nil {
		return w, err
	}
	w.Key = k
	w.End = time.UnixMilli(int64(binary.BigEndian.Uint64(b[len(b)-16:]))).UTC()
	w.Start = time.UnixMilli(int64(binary.BigEndian.Uint64(b[len(b)-8:]))).UTC()
	return w, nil
}

// Store layout of a session store, two key spaces in one store:
//
//	0x00 | len(key) u32 | key | end u64 | start u64  → aggregate
//	0x01 | end u64 | len(key) u32 | key | start u64  → 1 (sessions in end order, to close them)
const (
	sessionByKey byte = 0
	sessionByEnd byte = 1
)

func sessionKey(key []byte, start, end int64) []byte {
	b := []byte{sessionByKey}
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(end))
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

func sessionEndKey(key []byte, start, end int64) []byte {
	b := []byte{sessionByEnd}
	b = binary.BigEndian.AppendUint64(b, uint64(end))
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

type session struct {
	start, end int64
	agg        []byte
}

type sessionProcessor[K, V, A any] struct {
	w        SessionWindows
	store    string
	init     func() A
	fn       func(K, V, A) A
	merge    func(K, A, A) A
	keyCodec Codec[K]
	aggCodec Codec[A]

	ctx      ProcessorContext
	kv       KeyValueStore
	observed int64
	seen     bool
	late     int64
}

func (p *sessionProcessor[K, V, A]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.store)
	if err != nil {
		return err
	}
	p.ctx, p.kv = ctx, s
	return nil
}

func (p *sessionProcessor[K, V, A]) Process(rec Record) error {
	if rec.Key == nil || rec.Value == nil {
		return nil
	}
	k, v := rec.Key.(K), rec.Value.(V)
	kb, err := p.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("session %s: encode key: %w", p.store, err)
	}
	ts := rec.Timestamp.UnixMilli()
	if !p.seen || ts > p.observed {
		p.observed, p.seen = ts, true
	}
	gap := p.w.gap.Milliseconds()
	if ts+gap < p.observed-p.w.grace.Milliseconds() {
		// Even a session ending at ts would be closed: Kafka Streams'
		// KStreamSessionWindowAggregate drops the record as late.
		p.late++
		return p.closeSessions()
	}
	// Sessions of this key that end at or after ts-gap and start at or before ts+gap.
	prefix := sessionKey(kb, 0, 0)
	prefix = prefix[:len(prefix)-16]
	from := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(max(ts-gap, 0)))
	var overlapping []session
	if err := p.kv.Range(from, prefixEnd(prefix), func(key, value []byte) bool {
		end := int64(binary.BigEndian.Uint64(key[len(prefix):]))
		start := int64(binary.BigEndian.Uint64(key[len(prefix)+8:]))
		if start <= ts+gap {
			overlapping = append(overlapping, session{start, end, append([]byte(nil), value...)})
		}
		return true
	}); err != nil {
		return err
	}
	start, end := ts, ts
	for _, s := range overlapping {
		start, end = min(start, s.start), max(end, s.end)
	}
	acc := p.init()
	for i, s := range overlapping {
		old, err := p.aggCodec.Decode(s.agg)
		if err != nil {
			return fmt.Errorf("session %s: decode stored value: %w", p.store, err)
		}
		if i == 0 {
			acc = old
		} else {
			acc = p.merge(k, acc, old)
		}
		if err := p.kv.Delete(sessionKey(kb, s.start, s.end)); err != nil {
			return err
		}
		if err := p.kv.Delete(sessionEndKey(kb, s.start, s.end)); err != nil {
			return err
		}
		if !p.w.emitFinal && (s.start != start || s.end != end) {
			if err := p.forward(k, s.start, s.end, nil, rec.Timestamp); err != nil {
				return err
			}
		}
	}
	acc = p.fn(k, v, acc)
	ab, err := p.aggCodec.Encode(acc)
	if err != nil {
		return fmt.Errorf("session %s: encode: %w", p.store, err)
	}
	if err := p.kv.Put(sessionKey(kb, start, end), ab); err != nil {
		return err
	}
	if err := p.kv.Put(sessionEndKey(kb, start, end), []byte{1}); err != nil {
		return err
	}
	if !p.w.emitFinal {
		if err := p.forward(k, start, end, acc, rec.Timestamp); err != nil {
			return err
		}
	}
	return p.closeSessions()
}

func (p *sessionProcessor[K, V, A]) forward(k K, start, end int64, value any, ts time.Time) error {
	w := Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()}
	return p.ctx.Forward(Record{Key: w, Value: value, Timestamp: ts})
}

// closeSessions removes the sessions whose end plus gap and grace stream time has passed (no
// record can join them any more), emitting them under EmitFinal.
func (p *sessionProcessor[K, V, A]) closeSessions() error {
	lastClosedEnd := p.observed - p.w.grace.Milliseconds() - p.w.gap.Milliseconds() - 1
	if lastClosedEnd < 0 {
		return nil
	}
	type closed struct {
		key        []byte
		start, end int64
	}
	var done []closed
	upper := binary.BigEndian.AppendUint64([]byte{sessionByEnd}, uint64(lastClosedEnd+1))
	if err := p.kv.Range([]byte{sessionByEnd}, upper, func(key, _ []byte) bool {
		end := int64(binary.BigEndian.Uint64(key[1:]))
		n := binary.BigEndian.Uint32(key[9:])
		kb := append([]byte(nil), key[13:13+n]...)
		start := int64(binary.BigEndian.Uint64(key[13+n:]))
		done = append(done, closed{kb, start, end})
		return true
	}); err != nil {
		return err
	}
	for _, c := range done {
		primary := sessionKey(c.key, c.start, c.end)
		if p.w.emitFinal {
			ab, err := p.kv.Get(primary)
			if err != nil {
				return err
			}
			k, err := p.keyCodec.Decode(c.key)
			if err != nil {
				return fmt.Errorf("session %s: decode stored key: %w", p.store, err)
			}
			acc, err := p.aggCodec.Decode(ab)
			if err != nil {
				return fmt.Errorf("session %s: decode stored value: %w", p.store, err)
			}
			if err := p.forward(k, c.start, c.end, acc, time.UnixMilli(c.end).UTC()); err != nil {
				return err
			}
		}
		if err := p.kv.Delete(primary); err != nil {
			return err
		}
		if err := p.kv.Delete(sessionEndKey(c.key, c.start, c.end)); err != nil {
			return err
		}
	}
	return nil
}

func (p *sessionProcessor[K, V, A]) Close() error { return nil }
