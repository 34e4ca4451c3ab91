package broker

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/strand-data/strand/internal/journal"
)

// copyBufSize is the chunk a user-space copy moves at a time: large enough that a fetch of
// a few MiB takes few syscalls, small enough to pool per connection.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyRange writes bytes [Pos, Pos+Len) of r.File to w through a pooled buffer, for files
// without a descriptor or writers sendfile cannot reach. It returns the bytes written to w.
// A file that ends early (a concurrent truncation) is an error: the frame length is already
// promised, so the caller must close the connection.
func copyRange(w io.Writer, r journal.FileRange) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var written int64
	for written < r.Len {
		chunk := buf[:min(int64(len(buf)), r.Len-written)]
		n, err := r.File.ReadAt(chunk, r.Pos+written)
		if n > 0 {
			m, werr := w.Write(chunk[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if n < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				return written, fmt.Errorf("segment shorter than expected: %d of %d bytes", written, r.Len)
			}
			return written, fmt.Errorf("read segment: %w", err)
		}
	}
	return written, nil
}
