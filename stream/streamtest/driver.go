// Package streamtest runs a stream topology in a test, without a broker and with time under
// the test's control: Kafka Streams' TopologyTestDriver, for package stream.
//
//	d := streamtest.New(t, topology)
//	in := streamtest.NewInput(d, "orders", stream.String(), stream.JSON[Order]())
//	out := streamtest.NewOutput(d, "order-totals", stream.String(), stream.JSON[Totals]())
//	in.Pipe("alice", Order{Amount: 3})
//	got := out.ReadAll()
//
// The records go through the same tasks, codecs and Pebble stores (in memory) as under
// stream.App.Run; repartition records are read back at once.
package streamtest

import (
	"testing"
	"time"

	"github.com/strand-data/strand/stream"
)

// Driver runs one topology for one test.
type Driver struct {
	tb      testing.TB
	local   *stream.Local
	now     time.Time
	pending map[string][]stream.Output // outputs not yet read, by topic
}

// Option configures a Driver.
type Option func(*stream.LocalConfig, *Driver)

// AppID sets the application id that prefixes internal topics (default "app").
func AppID(id string) Option { return func(c *stream.LocalConfig, _ *Driver) { c.AppID = id } }

// Partitions sets an input topic's partition count (default 1).
func Partitions(topic string, n int32) Option {
	return func(c *stream.LocalConfig, _ *Driver) {
		if c.Partitions == nil {
			c.Partitions = map[string]int32{}
		}
		c.Partitions[topic] = n
	}
}

// BadRecords sets the bad-record policy and, for stream.BadRecordDeadLetter, the topic.
func BadRecords(p stream.BadRecordPolicy, deadLetterTopic string) Option {
	return func(c *stream.LocalConfig, _ *Driver) { c.OnBadRecord, c.DeadLetterTopic = p, deadLetterTopic }
}

// StartTime sets the wall clock's start (default 2026-01-01T00:00:00Z, so tests are
// repeatable).
func StartTime(t time.Time) Option { return func(_ *stream.LocalConfig, d *Driver) { d.now = t } }

// New builds the driver; a topology error fails the test. The driver closes at cleanup.
func New(tb testing.TB, t *stream.Topology, opts ...Option) *Driver {
	tb.Helper()
	d := &Driver{tb: tb, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), pending: map[string][]stream.Output{}}
	var cfg stream.LocalConfig
	for _, o := range opts {
		o(&cfg, d)
	}
	cfg.Now = func() time.Time { return d.now }
	l, err := stream.NewLocal(t, cfg)
	if err != nil {
		tb.Fatalf("streamtest: %v", err)
	}
	d.local = l
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("streamtest: close: %v", err)
		}
	})
	return d
}

// Now is the driver's wall clock.
func (d *Driver) Now() time.Time { return d.now }

// AdvanceWallClock moves the wall clock by by and fires the wall-clock punctuators due.
func (d *Driver) AdvanceWallClock(by time.Duration) {
	d.tb.Helper()
	d.now = d.now.Add(by)
	if err := d.local.AdvanceWallClock(d.now); err != nil {
		d.tb.Fatalf("streamtest: advance wall clock: %v", err)
	}
	d.collect()
}

// PipeRaw pipes one record of bytes and returns the processing error, for tests of bad
// input and failing processors.
func (d *Driver) PipeRaw(topic string, key, value []byte, ts time.Time) error {
	err := d.local.Pipe(topic, key, value, ts, nil)
	d.collect()
	return err
}

func (d *Driver) collect() {
	for _, o := range d.local.TakeOutputs() {
		d.pending[o.Topic] = append(d.pending[o.Topic], o)
	}
}

// Records returns, and forgets, the raw records written to topic since the last read;
// changelog and repartition topics included.
func (d *Driver) Records(topic string) []stream.Output {
	out := d.pending[topic]
	delete(d.pending, topic)
	return out
}

// Skipped is how many bad records were skipped or dead-lettered.
func (d *Driver) Skipped() int64 { return d.local.Skipped() }

// Input pipes typed records into one topic.
type Input[K, V any] struct {
	d          *Driver
	topic      string
	keyCodec   stream.Codec[K]
	valueCodec stream.Codec[V]
}

// NewInput returns an input for topic.
func NewInput[K, V any](d *Driver, topic string, keyCodec stream.Codec[K], valueCodec stream.Codec[V]) *Input[K, V] {
	return &Input[K, V]{d, topic, keyCodec, valueCodec}
}

// Pipe pipes one record stamped with the wall clock; an error fails the test.
func (in *Input[K, V]) Pipe(key K, value V) { in.d.tb.Helper(); in.PipeAt(key, value, in.d.now) }

// PipeAt pipes one record with timestamp ts (event time).
func (in *Input[K, V]) PipeAt(key K, value V, ts time.Time) {
	in.d.tb.Helper()
	kb, err := in.keyCodec.Encode(key)
	if err != nil {
		in.d.tb.Fatalf("streamtest: encode key: %v", err)
	}
	vb, err := in.valueCodec.Encode(value)
	if err != nil {
		in.d.tb.Fatalf("streamtest: encode value: %v", err)
	}
	if err := in.d.PipeRaw(in.topic, kb, vb, ts); err != nil {
		in.d.tb.Fatalf("streamtest: pipe %s: %v", in.topic, err)
	}
}

// PipeTombstone pipes a record with a nil value.
func (in *Input[K, V]) PipeTombstone(key K) {
	in.d.tb.Helper()
	kb, err := in.keyCodec.Encode(key)
	if err != nil {
		in.d.tb.Fatalf("streamtest: encode key: %v", err)
	}
	if err := in.d.PipeRaw(in.topic, kb, nil, in.d.now); err != nil {
		in.d.tb.Fatalf("streamtest: pipe %s: %v", in.topic, err)
	}
}

// Record is a decoded output record. Tombstone is set for a nil value.
type Record[K, V any] struct {
	Key       K
	Value     V
	Tombstone bool
	Timestamp time.Time
	Partition int32
}

// Output reads typed records from one topic.
type Output[K, V any] struct {
	d          *Driver
	topic      string
	keyCodec   stream.Codec[K]
	valueCodec stream.Codec[V]
}

// NewOutput returns an output for topic.
func NewOutput[K, V any](d *Driver, topic string, keyCodec stream.Codec[K], valueCodec stream.Codec[V]) *Output[K, V] {
	return &Output[K, V]{d, topic, keyCodec, valueCodec}
}

// ReadAll returns the records written to the topic since the last read, in order.
func (o *Output[K, V]) ReadAll() []Record[K, V] {
	o.d.tb.Helper()
	var out []Record[K, V]
	for _, r := range o.d.Records(o.topic) {
		rec := Record[K, V]{Timestamp: r.Timestamp, Partition: r.Partition, Tombstone: r.Value == nil}
		var err error
		if rec.Key, err = o.keyCodec.Decode(r.Key); err != nil {
			o.d.tb.Fatalf("streamtest: %s: decode key: %v", o.topic, err)
		}
		if !rec.Tombstone {
			if rec.Value, err = o.valueCodec.Decode(r.Value); err != nil {
				o.d.tb.Fatalf("streamtest: %s: decode value: %v", o.topic, err)
			}
		}
		out = append(out, rec)
	}
	return out
}

// Latest returns the last value per key among the records not yet read (what a compacted
// topic keeps); a tombstone removes the key.
func (o *Output[K, V]) Latest() map[string]V {
	o.d.tb.Helper()
	latest := map[string]V{}
	for _, r := range o.ReadAll() {
		kb, _ := o.keyCodec.Encode(r.Key)
		if r.Tombstone {
			delete(latest, string(kb))
		} else {
			latest[string(kb)] = r.Value
		}
	}
	return latest
}

// Store reads a store of the topology with codecs.
type Store[K, V any] struct {
	d          *Driver
	name       string
	keyCodec   stream.Codec[K]
	valueCodec stream.Codec[V]
}

// NewStore returns a typed view of the named store.
func NewStore[K, V any](d *Driver, name string, keyCodec stream.Codec[K], valueCodec stream.Codec[V]) *Store[K, V] {
	return &Store[K, V]{d, name, keyCodec, valueCodec}
}

// Get returns key's value and whether the store has it.
func (s *Store[K, V]) Get(key K) (V, bool) {
	s.d.tb.Helper()
	var zero V
	kb, err := s.keyCodec.Encode(key)
	if err != nil {
		s.d.tb.Fatalf("streamtest: encode key: %v", err)
	}
	vb, err := s.d.local.StoreGet(s.name, kb)
	if err != nil {
		s.d.tb.Fatalf("streamtest: store %s: %v", s.name, err)
	}
	if vb == nil {
		return zero, false
	}
	v, err := s.valueCodec.Decode(vb)
	if err != nil {
		s.d.tb.Fatalf("streamtest: store %s: decode: %v", s.name, err)
	}
	return v, true
}

// Len is the number of keys in the store.
func (s *Store[K, V]) Len() int {
	s.d.tb.Helper()
	n := 0
	if err := s.d.local.StoreRange(s.name, func(_, _ []byte) bool { n++; return true }); err != nil {
		s.d.tb.Fatalf("streamtest: store %s: %v", s.name, err)
	}
	return n
}
