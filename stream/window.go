package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Windows are fixed-size windows over event time (record timestamps): tumbling when they
// advance by their size, hopping when they advance by less and overlap. A record belongs to
// every window [start, start+size) that holds its timestamp.
//
// A window closes when stream time (the largest timestamp seen) passes its end plus the
// grace period; a record for a closed window is late and dropped, as Kafka Streams'
// KStreamWindowAggregate drops it. Stream time moves only when records arrive, so a quiet
// partition would keep its last windows open forever; AdvanceWhenIdle lets it move with the
// wall clock once the partition has been quiet that long.
type Windows struct {
	size, advance, grace time.Duration
	emitFinal            bool
	idle                 time.Duration
}

// Tumbling returns back-to-back windows of size.
func Tumbling(size time.Duration) Windows { return Windows{size: size, advance: size} }

// Hopping returns windows of size starting every advance.
func Hopping(size, advance time.Duration) Windows { return Windows{size: size, advance: advance} }

// Grace accepts records up to d after a window's end (in stream time).
func (w Windows) Grace(d time.Duration) Windows { w.grace = d; return w }

// EmitFinal emits each window once, when it closes, instead of on every update (Kafka
// Streams' EmitStrategy.onWindowClose, KIP-825).
func (w Windows) EmitFinal() Windows { w.emitFinal = true; return w }

// AdvanceWhenIdle moves a task's window clock with the wall clock once no record has
// arrived for d, so windows close on an idle partition. It is checked every d/2 of wall
// time.
func (w Windows) AdvanceWhenIdle(d time.Duration) Windows { w.idle = d; return w }

// Size is the length of each window.
func (w Windows) Size() time.Duration { return w.size }

func (w Windows) validate() error {
	switch {
	case w.size <= 0:
		return errors.New("window size must be positive")
	case w.advance <= 0 || w.advance > w.size:
		return fmt.Errorf("window advance %v must be positive and at most the size %v", w.advance, w.size)
	case w.grace < 0 || w.idle < 0:
		return errors.New("grace and idle time must not be negative")
	case w.size%time.Millisecond != 0 || w.advance%time.Millisecond != 0:
		return errors.New("window size and advance are whole milliseconds (record timestamps are)")
	}
	return nil
}

// windowStarts returns the starts (ms) of the windows holding ts (ms), latest first, as
// Kafka Streams' TimeWindows#windowsFor computes them.
func (w Windows) windowStarts(ts int64) []int64 {
	size, advance := w.size.Milliseconds(), w.advance.Milliseconds()
	var starts []int64
	for start := ts - ts%advance; start > ts-size && start >= 0; start -= advance {
		starts = append(starts, start)
	}
	return starts
}

// Windowed is a key within a window.
type Windowed[K any] struct {
	Key        K
	Start, End time.Time
}

// WindowedCodec encodes a windowed key as Kafka Streams' TimeWindowedSerializer does: the
// key's bytes, then the window start in milliseconds as 8 big-endian bytes. The end is the
// start plus size.
func WindowedCodec[K any](keyCodec Codec[K], size time.Duration) Codec[Windowed[K]] {
	return windowedCodec[K]{keyCodec, size}
}

type windowedCodec[K any] struct {
	c    Codec[K]
	size time.Duration
}

func (c windowedCodec[K]) Encode(w Windowed[K]) ([]byte, error) {
	kb, err := c.c.Encode(w.Key)
	if err != nil {
		return nil, err
	}
	return binary.BigEndian.AppendUint64(kb, uint64(w.Start.UnixMilli())), nil
}

func (c windowedCodec[K]) Decode(b []byte) (Windowed[K], error) {
	var w Windowed[K]
	if len(b) < 8 {
		return w, fmt.Errorf("windowed key: %d bytes, want at least 8", len(b))
	}
	k, err := c.c.Decode(b[:len(b)-8])
	if err != nil {
		return w, err
	}
	start := time.UnixMilli(int64(binary.BigEndian.Uint64(b[len(b)-8:]))).UTC()
	return Windowed[K]{Key: k, Start: start, End: start.Add(c.size)}, nil
}

// WindowedGrouped is a grouped stream cut into windows.
type WindowedGrouped[K, V any] struct {
	g Grouped[K, V]
	w Windows
}

// WindowedBy cuts a grouped stream into windows.
func WindowedBy[K, V any](g Grouped[K, V], w Windows) WindowedGrouped[K, V] {
	if err := w.validate(); err != nil {
		g.s.t.fail(fmt.Errorf("windows: %w", err))
	}
	return WindowedGrouped[K, V]{g, w}
}

// WindowedAggregate folds each key's records per window into the named store. The table's
// stream carries every update (or, with EmitFinal, each window's final value once it
// closes). Closed windows leave the store.
func WindowedAggregate[K, V, A any](wg WindowedGrouped[K, V], store string, init func() A, fn func(K, V, A) A, aggCodec Codec[A]) Table[Windowed[K], A] {
	t := wg.g.s.t
	name := "window-aggregate-" + store
	keyCodec, w := wg.g.keyCodec, wg.w
	t.AddProcessor(name, func() Processor {
		return &windowProcessor[K, V, A]{w: w, store: store, init: init, fn: fn, keyCodec: keyCodec, aggCodec: aggCodec}
	}, wg.g.s.node)
	t.AddStore(store, name)
	return Table[Windowed[K], A]{t, name, store, WindowedCodec(keyCodec, w.size), aggCodec}
}

// WindowedCount counts each key's records per window.
func WindowedCount[K, V any](wg WindowedGrouped[K, V], store string) Table[Windowed[K], int64] {
	return WindowedAggregate(wg, store, func() int64 { return 0 }, func(_ K, _ V, n int64) int64 { return n + 1 }, Int64())
}

// windowProcessor keeps a window's aggregate under the store key start (8 bytes, big
// endian) + key, so the windows to close are a prefix scan in start order.
type windowProcessor[K, V, A any] struct {
	w        Windows
	store    string
	init     func() A
	fn       func(K, V, A) A
	keyCodec Codec[K]
	aggCodec Codec[A]

	ctx ProcessorContext
	kv  KeyValueStore

	observed       int64 // window clock, ms: the largest timestamp seen, or idle-advanced
	seen           bool
	recordObserved int64     // the window clock at the last record
	recordWall     time.Time // the wall clock at the last record
	late           int64
	keyBuffer      []byte
}

func (p *windowProcessor[K, V, A]) Init(ctx ProcessorContext) error {
	s, err := ctx.Store(p.store)
	if err != nil {
		return err
	}
	p.ctx, p.kv = ctx, s
	if p.w.idle > 0 {
		ctx.Schedule(max(p.w.idle/2, time.Millisecond), WallClockTime, p.onWallClock)
	}
	return nil
}

func (p *windowProcessor[K, V, A]) storeKey(start int64, key []byte) []byte {
	p.keyBuffer = binary.BigEndian.AppendUint64(p.keyBuffer[:0], uint64(start))
	return append(p.keyBuffer, key...)
}

func (p *windowProcessor[K, V, A]) Process(rec Record) error {
	if rec.Key == nil || rec.Value == nil {
		return nil
	}
	k, v := rec.Key.(K), rec.Value.(V)
	kb, err := p.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("window %s: encode key: %w", p.store, err)
	}
	ts := rec.Timestamp.UnixMilli()
	if !p.seen || ts > p.observed {
		p.observed, p.seen = ts, true
	}
	p.recordObserved, p.recordWall = p.observed, p.ctx.Now()
	closeTime := p.observed - p.w.grace.Milliseconds()
	for _, start := range p.w.windowStarts(ts) {
		end := start + p.w.size.Milliseconds()
		if end <= closeTime {
			p.late++ // Kafka Streams logs and counts these as dropped-records
			continue
		}
		key := p.storeKey(start, kb)
		acc := p.init()
		old, err := p.kv.Get(key)
		if err != nil {
			return err
		}
		if old != nil {
			if acc, err = p.aggCodec.Decode(old); err != nil {
				return fmt.Errorf("window %s: decode stored value: %w", p.store, err)
			}
		}
		acc = p.fn(k, v, acc)
		ab, err := p.aggCodec.Encode(acc)
		if err != nil {
			return fmt.Errorf("window %s: encode: %w", p.store, err)
		}
		if err := p.kv.Put(key, ab); err != nil {
			return err
		}
		if !p.w.emitFinal {
			if err := p.forward(k, start, acc, rec.Timestamp); err != nil {
				return err
			}
		}
	}
	return p.closeWindows()
}

func (p *windowProcessor[K, V, A]) forward(k K, start int64, acc A, ts time.Time) error {
	s := time.UnixMilli(start).UTC()
	return p.ctx.Forward(Record{Key: Windowed[K]{Key: k, Start: s, End: s.Add(p.w.size)}, Value: acc, Timestamp: ts})
}

// closeWindows removes the windows whose end plus grace the window clock has passed,
// emitting their final values under EmitFinal.
func (p *windowProcessor[K, V, A]) closeWindows() error {
	if !p.seen {
		return nil
	}
	// A window [start, start+size) is closed once start+size <= observed-grace.
	lastClosedStart := p.observed - p.w.grace.Milliseconds() - p.w.size.Milliseconds()
	if lastClosedStart < 0 {
		return nil
	}
	type closed struct {
		storeKey, value []byte
	}
	var done []closed
	upper := binary.BigEndian.AppendUint64(nil, uint64(lastClosedStart+1))
	if err := p.kv.Range(nil, upper, func(key, value []byte) bool {
		done = append(done, closed{append([]byte(nil), key...), append([]byte(nil), value...)})
		return true
	}); err != nil {
		return err
	}
	for _, c := range done {
		if p.w.emitFinal {
			k, err := p.keyCodec.Decode(c.storeKey[8:])
			if err != nil {
				return fmt.Errorf("window %s: decode stored key: %w", p.store, err)
			}
			acc, err := p.aggCodec.Decode(c.value)
			if err != nil {
				return fmt.Errorf("window %s: decode stored value: %w", p.store, err)
			}
			start := int64(binary.BigEndian.Uint64(c.storeKey[:8]))
			end := time.UnixMilli(start + p.w.size.Milliseconds()).UTC()
			if err := p.forward(k, start, acc, end); err != nil {
				return err
			}
		}
		if err := p.kv.Delete(c.storeKey); err != nil {
			return err
		}
	}
	return nil
}

// onWallClock advances the window clock of a quiet task by the wall time since its last
// record, then closes what that makes due.
func (p *windowProcessor[K, V, A]) onWallClock(now time.Time) error {
	if !p.seen || now.Sub(p.recordWall) < p.w.idle {
		return nil
	}
	if advanced := p.recordObserved + now.Sub(p.recordWall).Milliseconds(); advanced > p.observed {
		p.observed = advanced
	}
	return p.closeWindows()
}

func (p *windowProcessor[K, V, A]) Close() error { return nil }
