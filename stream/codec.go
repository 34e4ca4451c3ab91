package stream

import (
	"encoding/json"
	"fmt"
)

// Codec turns values of one type into record bytes and back. Encode of a value a codec
// cannot represent and Decode of bytes it cannot read return an error; a Decode error on
// an input record goes to the application's bad-record policy (Config.OnBadRecord), never
// to a crash loop.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// Bytes is the identity codec.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error) { return v, nil }

// Decode copies: record buffers belong to the client and are reused.
func (bytesCodec) Decode(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	return append([]byte(nil), b...), nil
}

// String encodes a string as its UTF-8 bytes, like Kafka's StringSerializer.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }

// JSON encodes T with encoding/json.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("json: %w", err)
	}
	return v, nil
}

// Int64 encodes an int64 as 8 big-endian bytes, like Kafka's LongSerializer, so counts
// written by this library read back with Java's Serdes.Long().
func Int64() Codec[int64] { return int64Codec{} }

type int64Codec struct{}

func (int64Codec) Encode(v int64) ([]byte, error) {
	u := uint64(v)
	return []byte{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}, nil
}

func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("int64: %d bytes, want 8", len(b))
	}
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	return int64(u), nil
}

// erased is a codec on any, the form the untyped processor graph stores: the typed DSL
// wraps its Codec[T] once when it builds a node, not per record.
type erased interface {
	encode(v any) ([]byte, error)
	decode(b []byte) (any, error)
}

type erasedCodec[T any] struct{ c Codec[T] }

func erase[T any](c Codec[T]) erased {
	if c == nil {
		return nil
	}
	return erasedCodec[T]{c}
}

func (e erasedCodec[T]) encode(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := v.(T)
	if !ok {
		return nil, fmt.Errorf("encode: value of type %T, codec for %T", v, t)
	}
	return e.c.Encode(t)
}

func (e erasedCodec[T]) decode(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	return e.c.Decode(b)
}
