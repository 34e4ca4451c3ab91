package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// KeyValueStore is a task's slice of a named state store: the keys of one store on one
// partition. Writes are visible to the task's own reads at once, reach the changelog topic
// as they happen, and reach the local database in the task's next commit.
type KeyValueStore interface {
	// Get returns the value of key, or nil when there is none.
	Get(key []byte) ([]byte, error)
	// Put sets key to value; a nil value deletes the key.
	Put(key, value []byte) error
	Delete(key []byte) error
	// Range calls fn for each key in [from, to) in key order (nil bounds are open) until fn
	// returns false. Keys and values are valid only during the call.
	Range(from, to []byte, fn func(key, value []byte) bool) error
}

// TypedStore wraps a KeyValueStore with codecs.
type TypedStore[K, V any] struct {
	Store      KeyValueStore
	KeyCodec   Codec[K]
	ValueCodec Codec[V]
}

// Get returns the value of key and whether there was one.
func (s TypedStore[K, V]) Get(key K) (V, bool, error) {
	var zero V
	kb, err := s.KeyCodec.Encode(key)
	if err != nil {
		return zero, false, fmt.Errorf("encode key: %w", err)
	}
	vb, err := s.Store.Get(kb)
	if err != nil || vb == nil {
		return zero, false, err
	}
	v, err := s.ValueCodec.Decode(vb)
	if err != nil {
		return zero, false, fmt.Errorf("decode stored value: %w", err)
	}
	return v, true, nil
}

// Put stores value under key.
func (s TypedStore[K, V]) Put(key K, value V) error {
	kb, err := s.KeyCodec.Encode(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	vb, err := s.ValueCodec.Encode(value)
	if err != nil {
		return fmt.Errorf("encode value: %w", err)
	}
	return s.Store.Put(kb, vb)
}

// Delete removes key.
func (s TypedStore[K, V]) Delete(key K) error {
	kb, err := s.KeyCodec.Encode(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return s.Store.Delete(kb)
}

// stateDB is the one Pebble database of an instance. Every (store, partition) is a key
// prefix in it, so the memory budget is one number however many tasks the instance runs
// (Kafka Streams opens one RocksDB per task and store, and users cannot cap their sum).
type stateDB struct {
	db *pebble.DB
}

// openStateDB opens (or creates) the database in dir with a block cache of memory bytes
// and memtables sized from the same budget: a quarter for each of the two memtables Pebble
// may hold at once, the rest for the cache.
func openStateDB(dir string, fs vfs.FS, memory int64) (*stateDB, error) {
	if memory < 8<<20 {
		return nil, fmt.Errorf("state memory %d bytes: at least 8 MiB is needed", memory)
	}
	cache := pebble.NewCache(memory / 2)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FS:                          fs,
		Cache:                       cache,
		MemTableSize:                uint64(memory / 4),
		MemTableStopWritesThreshold: 2,
		Logger:                      quietLogger{},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) close() error { return s.db.Close() }

// sync makes every batch committed so far durable with one WAL fsync. Pebble keeps NoSync
// commits in its log writer's buffer: without this a killed process loses them (measured:
// a NoSync batch was gone after SIGKILL 200 ms later), and its tasks restore from zero.
func (s *stateDB) sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	return nil
}

// quietLogger keeps Pebble's informational lines out of the program's output; fatal
// errors still stop the process, as Pebble requires.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Key layout: 'd' | len(store) u16 | store | partition u32 | user key for data, and
// 'o' | len(store) u16 | store | partition u32 for the next changelog offset the data
// reflects. The length prefix keeps store "a" from sharing a prefix with store "ab". Keys
// starting with 'm' hold the instance's own metadata (its process id, eos.go).
func storePrefix(kind byte, store string, partition int32) []byte {
	b := make([]byte, 0, 1+2+len(store)+4)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(store)))
	b = append(b, store...)
	return binary.BigEndian.AppendUint32(b, uint32(partition))
}

// prefixEnd is the first key after every key that starts with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

type pebbleReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func getCopy(r pebbleReader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, len(v)), v...)
	return out, closer.Close()
}

// checkpoint returns the changelog offset the stored (store, partition) reflects: the next
// offset to read when restoring, 0 for a store never written here.
func (s *stateDB) checkpoint(store string, partition int32) (int64, error) {
	v, err := getCopy(s.db, storePrefix('o', store, partition))
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("store %s partition %d: checkpoint of %d bytes", store, partition, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

func setCheckpoint(b *pebble.Batch, store string, partition int32, next int64) error {
	return b.Set(storePrefix('o', store, partition), binary.BigEndian.AppendUint64(nil, uint64(next)), nil)
}

// taskStore is one store on one task. Its writes go to the task's indexed batch (which
// reads see) and to the changelog through logChange.
type taskStore struct {
	name      string
	prefix    []byte
	task      *task
	keyBuffer []byte
}

func (s *taskStore) key(k []byte) []byte {
	s.keyBuffer = append(append(s.keyBuffer[:0], s.prefix...), k...)
	return s.keyBuffer
}

func (s *taskStore) Get(key []byte) ([]byte, error) {
	v, err := getCopy(s.task.batch, s.key(key))
	if err != nil {
		return nil, fmt.Errorf("store %s get: %w", s.name, err)
	}
	return v, nil
}

func (s *taskStore) Put(key, value []byte) error {
	if value == nil {
		return s.Delete(key)
	}
	if err := s.task.batch.Set(s.key(key), value, nil); err != nil {
		return fmt.Errorf("store %s put: %w", s.name, err)
	}
	s.task.logChange(s.name, key, value)
	return nil
}

func (s *taskStore) Delete(key []byte) error {
	if err := s.task.batch.Delete(s.key(key), nil); err != nil {
		return fmt.Errorf("store %s delete: %w", s.name, err)
	}
	s.task.logChange(s.name, key, nil)
	return nil
}

func (s *taskStore) Range(from, to []byte, fn func(key, value []byte) bool) error {
	lower := append(append([]byte(nil), s.prefix...), from...)
	upper := prefixEnd(s.prefix)
	if to != nil {
		upper = append(append([]byte(nil), s.prefix...), to...)
	}
	it, err := s.task.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store %s range: %w", s.name, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key()[len(s.prefix):], it.Value()) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store %s range: %w", s.name, err)
	}
	return nil
}

// applyRestored writes changelog records into the database for (store, partition) and
// moves its checkpoint to next, in one batch: a crash mid-restore leaves a checkpoint that
// matches the data, and the next restore goes on from there.
func (s *stateDB) applyRestored(store string, partition int32, keys, values [][]byte, next int64) error {
	prefix := storePrefix('d', store, partition)
	b := s.db.NewBatch()
	defer b.Close()
	var key []byte
	for i := range keys {
		key = append(append(key[:0], prefix...), keys[i]...)
		var err error
		if values[i] == nil {
			err = b.Delete(key, nil)
		} else {
			err = b.Set(key, values[i], nil)
		}
		if err != nil {
			return err
		}
	}
	if err := setCheckpoint(b, store, partition, next); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// wipe deletes a (store, partition) and its checkpoint, for a store whose changelog no
// longer holds what the checkpoint says (the topic was recreated).
func (s *stateDB) wipe(store string, partition int32) error {
	prefix := storePrefix('d', store, partition)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return err
	}
	if err := b.Delete(storePrefix('o', store, partition), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}
