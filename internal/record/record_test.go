package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sampleRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			TimestampDelta: int64(i * 3),
			OffsetDelta:    int32(i),
			Key:            []byte(fmt.Sprintf("key-%d", i)),
			Value:          bytes.Repeat([]byte{byte('a' + i%26)}, 10+i),
			Headers:        []RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
		}
	}
	recs[n-1].Value = nil // a tombstone survives the round trip as nil
	return recs
}

func TestBuildRoundTripEveryCodec(t *testing.T) {
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(c.String(), func(t *testing.T) {
			recs := sampleRecords(20)
			b, err := Build(Header{BaseTimestamp: 1000, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 5}, recs, c)
			if err != nil {
				t.Fatal(err)
			}
			h, err := ValidateProduced(b)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if h.Compression() != c || h.RecordCount != 20 || h.LastOffsetDelta != 19 || h.MaxTimestamp != 1000+19*3 {
				t.Fatalf("header %+v", h)
			}
			if h.LastSequence() != 24 {
				t.Fatalf("last sequence %d, want 24", h.LastSequence())
			}
			got, err := Records(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i := range recs {
				w, g := recs[i], got[i]
				if !bytes.Equal(w.Key, g.Key) || !bytes.Equal(w.Value, g.Value) || (w.Value == nil) != (g.Value == nil) ||
					w.OffsetDelta != g.OffsetDelta || w.TimestampDelta != g.TimestampDelta ||
					len(g.Headers) != 1 || g.Headers[0].Key != "h" || !bytes.Equal(g.Headers[0].Value, w.Headers[0].Value) {
					t.Fatalf("record %d: got %+v want %+v", i, g, w)
				}
			}
			// kmsg, an independent codec, reads our header the same way.
			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg: %v", err)
			}
			if kb.NumRecords != 20 || kb.ProducerID != 7 || int32(kb.CRC) != int32(h.CRC) {
				t.Fatalf("kmsg sees %+v", kb)
			}
		})
	}
}

// TestReadsKmsgBatch decodes a batch encoded by kmsg, not by us.
func TestReadsKmsgBatch(t *testing.T) {
	var recBytes []byte
	for i := 0; i < 3; i++ {
		r := kmsg.Record{OffsetDelta: int32(i), Key: []byte{byte(i)}, Value: []byte("v")}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // kmsg writes the length it is given
		recBytes = r.AppendTo(recBytes)
	}
	for _, c := range []Codec{CodecNone, CodecSnappy, CodecZstd} {
		body, err := Compress(c, recBytes)
		if err != nil {
			t.Fatal(err)
		}
		kb := kmsg.RecordBatch{Magic: 2, Attributes: int16(c), LastOffsetDelta: 2, NumRecords: 3, Records: body,
			ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, FirstTimestamp: 5, MaxTimestamp: 5}
		kb.Length = int32(HeaderSize - batchLengthOverhead + len(body))
		raw := kb.AppendTo(nil)
		// kmsg does not compute the CRC; do it as a producer would.
		putCRC(raw)
		if _, err := ValidateProduced(raw); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		recs, err := Records(raw)
		if err != nil || len(recs) != 3 || recs[2].Key[0] != 2 {
			t.Fatalf("%v: %v %+v", c, err, recs)
		}
	}
}

func putCRC(b []byte) {
	c := Checksum(b)
	b[offCRC], b[offCRC+1], b[offCRC+2], b[offCRC+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

func TestXerialSnappy(t *testing.T) {
	plain := bytes.Repeat([]byte("strand "), 1000)
	block, _ := Compress(CodecSnappy, plain[:3000])
	block2, _ := Compress(CodecSnappy, plain[3000:])
	framed := append([]byte{}, xerialMagic...)
	framed = append(framed, 0, 0, 0, 1, 0, 0, 0, 1)
	for _, blk := range [][]byte{block, block2} {
		framed = append(framed, byte(len(blk)>>24), byte(len(blk)>>16), byte(len(blk)>>8), byte(len(blk)))
		framed = append(framed, blk...)
	}
	got, err := Decompress(CodecSnappy, framed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("xerial: %v, %d bytes", err, len(got))
	}
}

func TestValidateRejects(t *testing.T) {
	good, _ := Build(Header{BaseTimestamp: 1}, sampleRecords(3), CodecNone)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"short":       good[:40],
		"crc":         mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"magic1":      mut(func(b []byte) []byte { b[offMagic] = 1; return b }),
		"truncated":   good[:len(good)-1],
		"extra byte":  append(append([]byte(nil), good...), 0),
		"huge length": mut(func(b []byte) []byte { b[offBatchLength] = 0x7f; return b }),
		"neg count":   mut(func(b []byte) []byte { b[offRecordCount] = 0xff; putCRC(b); return b }),
		"bad codec":   mut(func(b []byte) []byte { b[offAttributes+1] |= 7; putCRC(b); return b }),
		"delta < cnt": mut(func(b []byte) []byte { b[offLastOffsetDelta+3] = 0; putCRC(b); return b }),
	}
	for name, b := range cases {
		if _, err := ValidateProduced(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := Split(append(append([]byte(nil), good...), good[:30]...)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("split of a truncated second batch: %v", err)
	}
	parts, err := Split(append(append([]byte(nil), good...), good...))
	if err != nil || len(parts) != 2 {
		t.Errorf("split of two batches: %d, %v", len(parts), err)
	}
	// SplitProduced rejects everything ValidateProduced rejects, in any position, and an
	// empty request; it returns the headers of what it accepts.
	for name, b := range cases {
		if _, err := SplitProduced(append(append([]byte(nil), good...), b...)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("SplitProduced with a second batch %s: err %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := SplitProduced(nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("SplitProduced of nothing: %v", err)
	}
	two := append(append([]byte(nil), good...), good...)
	prod, err := SplitProduced(two)
	if err != nil || len(prod.Batches) != 2 || len(prod.Headers) != 2 || prod.Headers[1].RecordCount != 3 || !bytes.Equal(prod.Bytes, two) {
		t.Errorf("SplitProduced of two batches: %+v, %v", prod.Headers, err)
	}
}

func TestIncrementSequenceWraps(t *testing.T) {
	if got := IncrementSequence(1<<31-1, 1); got != 0 {
		t.Fatalf("wrap: %d", got)
	}
	if got := IncrementSequence(1<<31-2, 3); got != 1 {
		t.Fatalf("wrap by 3: %d", got)
	}
	if got := IncrementSequence(5, 4); got != 9 {
		t.Fatalf("plain: %d", got)
	}
}

func FuzzValidate(f *testing.F) {
	good, _ := Build(Header{BaseTimestamp: 1}, sampleRecords(3), CodecNone)
	gz, _ := Build(Header{BaseTimestamp: 1}, sampleRecords(3), CodecGzip)
	f.Add(good)
	f.Add(gz)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err == nil {
			if h.Size() != len(b) {
				t.Fatalf("valid batch of %d bytes claims %d", len(b), h.Size())
			}
			// Decoding a valid-looking batch may fail, but must not panic.
			_, _ = Records(b)
		}
		_, _ = Split(b)
	})
}
