package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"

	"github.com/strand-data/strand/internal/vfs"
)

// stableFile holds raft's stable keys (current term, last vote): few and small, so the whole
// map is rewritten durably on every change and kept in memory for reads.
const stableFile = "stable"

// ErrKeyNotFound is what Get answers for a key never set. Raft compares the message, so it
// must read "not found".
var ErrKeyNotFound = errors.New("not found")

// Set stores val under key durably.
func (s *Store) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	next := maps.Clone(s.stable)
	next[string(key)] = append([]byte(nil), val...)
	if err := s.write(func() error { return WriteSealedFile(s.fs, filepath.Join(s.dir, stableFile), encodeStable(next)) }); err != nil {
		return fmt.Errorf("stable store: %w", err)
	}
	s.stable = next
	return nil
}

// Get returns the value of key, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.stable[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return append([]byte(nil), v...), nil
}

// SetUint64 stores val under key.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the number stored under key, or ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("stable key %q holds %d bytes, not a number", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// encodeStable writes the keys in order, each as length-prefixed key and value.
func encodeStable(m map[string][]byte) []byte {
	var out []byte
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(m[k])))
		out = append(out, m[k]...)
	}
	return out
}

// readStable loads the stable file; a missing one is an empty map.
func readStable(fsys vfs.FS, name string) (map[string][]byte, error) {
	payload, err := ReadSealedFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeStable(payload, name)
}

func decodeStable(payload []byte, name string) (map[string][]byte, error) {
	m := map[string][]byte{}
	for len(payload) > 0 {
		k, rest, err := cutBytes(payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, name, err)
		}
		v, rest, err := cutBytes(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, name, err)
		}
		if v == nil {
			v = []byte{}
		}
		m[string(k)] = v
		payload = rest
	}
	return m, nil
}
