package kafka

import (
	"errors"
	"io"
	"math/bits"
	"sync"
)

// Request buffers are pooled by power-of-two size class, from 4 KiB to 128 MiB. A frame
// goes back to the pool only when the handler says it keeps no reference into it
// (FrameReleaser): in steady state a producer's requests are read into recycled buffers,
// with no allocation, no zeroing and nothing for the garbage collector.
const (
	minFrameClass = 12 // 4 KiB
	frameClasses  = 16 // up to 4 KiB << 15 = 128 MiB
)

var framePools [frameClasses]sync.Pool

// frameClass is the smallest class holding n bytes, or -1 when n is beyond the pool.
func frameClass(n int) int {
	if n <= 1<<minFrameClass {
		return 0
	}
	c := bits.Len(uint(n-1)) - minFrameClass
	if c >= frameClasses {
		return -1
	}
	return c
}

// getFrame returns a buffer of length n, from the pool when one of its class is there.
func getFrame(n int) []byte {
	c := frameClass(n)
	if c < 0 {
		return make([]byte, n)
	}
	if v, ok := framePools[c].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, 1<<(minFrameClass+c))
}

// putFrame gives a buffer from getFrame back to the pool.
func putFrame(b []byte) {
	c := frameClass(cap(b))
	if c < 0 || cap(b) != 1<<(minFrameClass+c) {
		return // not one of ours
	}
	b = b[:0]
	framePools[c].Put(&b)
}

// largeFrame is where readFrame stops trusting the size prefix.
const largeFrame = 1 << 20

// frameGrowth is how much a large frame's buffer grows once it is full: every byte read so
// far is copied at each step, so a 32 MiB produce request costs 1+8 MiB of copying, where
// doubling cost 31 MiB (21% of the broker's CPU with 1000 partitions). A client that lies
// about the size gets at most 8 bytes of buffer for each byte it really sends.
const frameGrowth = 8

// readFrame reads a frame of size bytes. Up to 1 MiB the buffer is taken at once; beyond,
// it grows (through the pool) only as bytes actually arrive, so a lying size prefix costs
// little.
func readFrame(r io.Reader, size int) ([]byte, error) {
	if size <= largeFrame {
		b := getFrame(size)
		if _, err := io.ReadFull(r, b); err != nil {
			putFrame(b)
			return nil, err
		}
		return b, nil
	}
	buf := getFrame(largeFrame)
	n := 0
	for {
		m, err := io.ReadFull(r, buf[n:])
		n += m
		if err != nil {
			putFrame(buf)
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if n == size {
			return buf, nil
		}
		bigger := getFrame(min(size, frameGrowth*len(buf)))
		copy(bigger, buf[:n])
		putFrame(buf)
		buf = bigger
	}
}
