package kafka

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadFrame(t *testing.T) {
	for _, size := range []int{8, 4096, 4097, largeFrame, largeFrame + 1, 3*largeFrame + 17, 20 * largeFrame} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i * 7)
		}
		// Trickled reads exercise the growth of large frames across partial reads.
		got, err := readFrame(iotest.HalfReader(bytes.NewReader(append(want, "next"...))), size)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, want))
		}
		putFrame(got)
		if _, err := readFrame(bytes.NewReader(want[:size-1]), size); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("size %d, one byte short: err %v, want unexpected EOF", size, err)
		}
	}
}

func TestFrameClasses(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {4096, 0}, {4097, 1}, {8192, 1}, {1 << 20, 8}, {128 << 20, 15}, {128<<20 + 1, -1},
	} {
		if c := frameClass(tc.n); c != tc.class {
			t.Errorf("frameClass(%d) = %d, want %d", tc.n, c, tc.class)
		}
	}
	b := getFrame(5000)
	if len(b) != 5000 || cap(b) != 8192 {
		t.Fatalf("getFrame(5000): len %d cap %d", len(b), cap(b))
	}
}
