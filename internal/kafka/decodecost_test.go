package kafka

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// tagBomb is a tagged-field count of 2^32-1 (uvarint ff ff ff ff 0f) with nothing after
// it. kmsg v1.15's generated decoders looped that many times over a reader that had run
// out (pkg/kmsg/generated.go, from franz-go's generate/gen.go "for i := b.Uvarint(); i >
// 0; i--"); third_party/kmsg stops such loops once the reader fails.
var tagBomb = []byte{0xff, 0xff, 0xff, 0xff, 0x0f}

// Cost bounds for decoding one request body of n bytes. A decode of a few hundred bytes
// takes microseconds, and an upstream tag bomb seconds, so the CPU bound is loose
// enough for a loaded machine and still four orders of magnitude below the attack.
// kmsg allocates for an array only after checking its count against the bytes left
// (kbin.Reader.ArrayLen), so memory grows by at most a struct's size per input byte.
const (
	costCPUFloor     = 20 * time.Millisecond
	costCPUPerByte   = 10 * time.Microsecond
	costAllocFloor   = 64 << 10
	costAllocPerByte = 1 << 10
)

// flexibleVersion is one request kind at one flexible version.
type flexibleVersion struct{ key, version int16 }

func (fv flexibleVersion) String() string {
	return fmt.Sprintf("%s v%d", kmsg.NameForKey(fv.key), fv.version)
}

func (fv flexibleVersion) request() kmsg.Request {
	req := kmsg.RequestForKey(fv.key)
	req.SetVersion(fv.version)
	return req
}

// flexibleVersions lists every request kind and version kmsg can decode whose encoding
// is flexible (has tagged fields), whether or not the broker serves it: decoding comes
// before the broker looks at the key.
func flexibleVersions() []flexibleVersion {
	var out []flexibleVersion
	for key := int16(0); key <= kmsg.MaxKey; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				out = append(out, flexibleVersion{key, v})
			}
		}
	}
	return out
}

// populate gives every array in v one element and every nil struct pointer a value,
// recursively, so that an encoding of v reaches each nested struct and so each nested
// tagged-field section.
func populate(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if !v.IsNil() {
			populate(v.Elem(), depth+1)
		}
	case reflect.Struct:
		if d, ok := v.Addr().Interface().(interface{ Default() }); ok {
			d.Default()
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.CanSet() {
				populate(f, depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{1})
			return
		}
		if v.Len() == 0 {
			v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
		}
		populate(v.Index(0), depth+1)
	}
}

// populatedBody is the encoding of fv's request with one element in every array.
func populatedBody(fv flexibleVersion) []byte {
	req := fv.request()
	populate(reflect.ValueOf(req), 0)
	req.SetVersion(fv.version)
	return req.AppendTo(nil)
}

// decodeCost is what decoding one body cost: CPU time of the whole process (so work that
// a decoder leaves running on another goroutine counts too) and heap bytes allocated.
type decodeCost struct {
	cpu   time.Duration
	alloc uint64
}

func processCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// measureDecode decodes body as fv through DecodeBody, the broker's decoding path.
func measureDecode(fv flexibleVersion, body []byte) (decodeCost, error) {
	req := fv.request()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := processCPU()
	err := DecodeBody(req, body)
	c1 := processCPU()
	runtime.ReadMemStats(&m1)
	return decodeCost{cpu: c1 - c0, alloc: m1.TotalAlloc - m0.TotalAlloc}, err
}

// checkCost fails t if decoding body as fv costs more than its size allows.
func checkCost(t testing.TB, fv flexibleVersion, body []byte) decodeCost {
	t.Helper()
	c, _ := measureDecode(fv, body)
	n := len(body)
	if max := costCPUFloor + time.Duration(n)*costCPUPerByte; c.cpu > max {
		t.Fatalf("%s: decoding %d bytes (% x…) took %v of CPU, bound %v", fv, n, head(body), c.cpu, max)
	}
	if max := uint64(costAllocFloor + n*costAllocPerByte); c.alloc > max {
		t.Fatalf("%s: decoding %d bytes (% x…) allocated %d bytes, bound %d", fv, n, head(body), c.alloc, max)
	}
	return c
}

func head(b []byte) []byte { return b[:min(len(b), 32)] }

// TestDecodeCostBoundedBySize decodes, for every flexible request kind and version, the
// encoding of a request with one element in every array cut at every byte and followed
// by a tag bomb (so that some cut puts the bomb at each tagged-field section, the nested
// ones too), plus the same cuts followed by huge array counts: each decode must cost CPU
// and memory bounded by its size. With kmsg v1.15 as published, the first bomb that
// lands on a tag count takes a core for tens of seconds and then fails the CPU bound.
func TestDecodeCostBoundedBySize(t *testing.T) {
	suffixes := [][]byte{
		tagBomb,
		{0xff, 0xff, 0xff, 0x7f},               // compact array count 2^28-2
		{0x7f, 0xff, 0xff, 0xff},               // int32 count 2^31-1
		append([]byte{0x01}, tagBomb...),       // an empty compact array, then the bomb
		append([]byte{0x02, 0x00}, tagBomb...), // one-element array of an empty string
		// Array counts as large as the bytes left, which kmsg accepts and allocates for.
		append([]byte{0x81, 0x08}, make([]byte, 1024)...),             // compact count 1024
		append([]byte{0x00, 0x00, 0x04, 0x00}, make([]byte, 1024)...), // int32 count 1024
	}
	var frames, maxBody int
	var worstCPU, worstAlloc float64
	var worstCPUAt, worstAllocAt string
	for _, fv := range flexibleVersions() {
		enc := populatedBody(fv)
		maxBody = max(maxBody, len(enc))
		for p := 0; p <= len(enc); p++ {
			for _, s := range suffixes {
				body := append(enc[:p:p], s...)
				c := checkCost(t, fv, body)
				frames++
				if len(body) < 64 {
					continue // the per-byte figures below are for bodies past the fixed costs
				}
				if r := float64(c.cpu) / float64(len(body)); r > worstCPU {
					worstCPU, worstCPUAt = r, fmt.Sprintf("%s, %d bytes", fv, len(body))
				}
				if r := float64(c.alloc) / float64(len(body)); r > worstAlloc {
					worstAlloc, worstAllocAt = r, fmt.Sprintf("%s, %d bytes", fv, len(body))
				}
			}
		}
	}
	if frames < 10000 {
		t.Fatalf("only %d crafted bodies; the populated encodings are too short (longest %d bytes)", frames, maxBody)
	}
	t.Logf("%d crafted bodies over %d flexible versions; of those of 64 bytes or more, worst CPU %.0f ns/byte (%s), worst allocation %.1f bytes/byte (%s)",
		frames, len(flexibleVersions()), worstCPU, worstCPUAt, worstAlloc, worstAllocAt)
}

// FuzzDecodeCost decodes arbitrary bytes as every flexible request kind and version (sel
// picks one) and checks that the cost is bounded by the input's size, not only that
// nothing panics.
func FuzzDecodeCost(f *testing.F) {
	fvs := flexibleVersions()
	for i, fv := range fvs {
		enc := populatedBody(fv)
		f.Add(uint16(i), enc)
		if fv.key == int16(kmsg.OffsetForLeaderEpoch) {
			// The frame: replica id -1, no topics, 2^32-1 tags.
			f.Add(uint16(i), append([]byte{0xff, 0xff, 0xff, 0xff, 0x01}, tagBomb...))
		}
	}
	f.Fuzz(func(t *testing.T, sel uint16, body []byte) {
		checkCost(t, fvs[int(sel)%len(fvs)], body)
	})
}
