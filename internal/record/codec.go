package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is a RecordBatch compression codec, as numbered in the batch attributes.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// maxDecompressed bounds what one batch may inflate to, so a compression bomb in a
// stored or received batch costs an error, not the process.
const maxDecompressed = 256 << 20

// xerialMagic starts snappy data framed the way the Java client frames it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var (
	zstdDecoderOnce sync.Once
	zstdDecoder     *zstd.Decoder
	zstdEncoderOnce sync.Once
	zstdEncoder     *zstd.Encoder
)

func sharedZstdDecoder() *zstd.Decoder {
	zstdDecoderOnce.Do(func() {
		zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxDecompressed), zstd.WithDecoderConcurrency(0))
	})
	return zstdDecoder
}

func sharedZstdEncoder() *zstd.Encoder {
	zstdEncoderOnce.Do(func() {
		zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	})
	return zstdEncoder
}

// Decompress inflates the records section of a batch compressed with c.
func Decompress(c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return src, nil
	case CodecGzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return readBounded(r, "gzip")
	case CodecSnappy:
		return decompressSnappy(src)
	case CodecLZ4:
		return readBounded(lz4.NewReader(bytes.NewReader(src)), "lz4")
	case CodecZstd:
		out, err := sharedZstdDecoder().DecodeAll(src, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown codec %d", ErrCorrupt, c)
}

func readBounded(r io.Reader, name string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("%w: %s: inflates past %d bytes", ErrCorrupt, name, maxDecompressed)
	}
	return out, nil
}

func decompressSnappy(src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		n, err := snappy.DecodedLen(src)
		if err != nil || n > maxDecompressed {
			return nil, fmt.Errorf("%w: snappy: bad length", ErrCorrupt)
		}
		out, err := s2.Decode(nil, src)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		}
		return out, nil
	}
	// Xerial framing: magic, version, compatible version, then (length, block) pairs.
	rest := src[len(xerialMagic)+8:]
	if len(src) < len(xerialMagic)+8 {
		return nil, fmt.Errorf("%w: snappy: short xerial header", ErrCorrupt)
	}
	var out []byte
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: snappy: truncated xerial block", ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n < 0 || n > len(rest) {
			return nil, fmt.Errorf("%w: snappy: xerial block of %d bytes, %d left", ErrCorrupt, n, len(rest))
		}
		dn, err := snappy.DecodedLen(rest[:n])
		if err != nil || len(out)+dn > maxDecompressed {
			return nil, fmt.Errorf("%w: snappy: bad block length", ErrCorrupt)
		}
		block, err := s2.Decode(nil, rest[:n])
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		}
		out = append(out, block...)
		rest = rest[n:]
	}
	return out, nil
}

// Compress deflates a records section with c.
func Compress(c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return src, nil
	case CodecGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case CodecSnappy:
		return snappy.Encode(nil, src), nil
	case CodecLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case CodecZstd:
		return sharedZstdEncoder().EncodeAll(src, nil), nil
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}
