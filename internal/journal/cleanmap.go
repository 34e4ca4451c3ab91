package journal

import "hash/maphash"

// offsetMap is the cleaner's key → latest offset map over the dirty section of a log. Like
// Kafka's SkimpyOffsetMap it stores a 128-bit hash of each key rather than the key, so
// its memory is fixed up front (24 bytes a slot) whatever the keys' sizes; two keys whose
// hashes collide in all 128 bits would be taken for one, a risk Kafka accepts with MD5 too.
type offsetMap struct {
	seed1, seed2 maphash.Seed
	slots        []mapSlot
	used, limit  int
	maxSlots     int
}

// mapSlot is one entry; offsetPlusOne is 0 in an empty slot.
type mapSlot struct {
	h1, h2        uint64
	offsetPlusOne int64
}

const (
	mapSlotSize   = 24
	mapLoadFactor = 0.9 // Kafka's log.cleaner.io.buffer.load.factor
)

// newOffsetMap makes a map that may grow to bufferBytes (log.cleaner.dedupe.buffer.size).
// Its slots are allocated by reset, no more than a pass needs.
func newOffsetMap(bufferBytes int64) *offsetMap {
	return &offsetMap{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), maxSlots: max(int(bufferBytes/mapSlotSize), 1)}
}

// reset empties the map for a pass that will put at most keys keys, sizing it to that
// (within the buffer) so small logs do not touch the whole buffer.
func (m *offsetMap) reset(keys int64) {
	n := m.maxSlots
	if want := float64(keys)/mapLoadFactor + 16; want < float64(n) {
		n = max(int(want), min(1024, m.maxSlots))
	}
	if cap(m.slots) >= n {
		m.slots = m.slots[:n]
		clear(m.slots)
	} else {
		m.slots = make([]mapSlot, n)
	}
	m.used, m.limit = 0, int(float64(n)*mapLoadFactor)
}

// free is how many more distinct keys fit.
func (m *offsetMap) free() int { return m.limit - m.used }

func (m *offsetMap) find(key []byte) (*mapSlot, uint64, uint64) {
	h1, h2 := maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
	i := h1 % uint64(len(m.slots))
	for {
		s := &m.slots[i]
		if s.offsetPlusOne == 0 || s.h1 == h1 && s.h2 == h2 {
			return s, h1, h2
		}
		if i++; i == uint64(len(m.slots)) {
			i = 0
		}
	}
}

// put records that key was seen at offset; offsets arrive in increasing order. The caller
// checks free first.
func (m *offsetMap) put(key []byte, offset int64) {
	s, h1, h2 := m.find(key)
	if s.offsetPlusOne == 0 {
		s.h1, s.h2 = h1, h2
		m.used++
	}
	s.offsetPlusOne = offset + 1
}

// get returns the latest offset of key, if it was seen.
func (m *offsetMap) get(key []byte) (int64, bool) {
	s, _, _ := m.find(key)
	return s.offsetPlusOne - 1, s.offsetPlusOne != 0
}
