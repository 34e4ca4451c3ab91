package record

import (
	"bytes"
	"testing"
)

func TestRebuildKeepsOffsetsTimestampsAndCodec(t *testing.T) {
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		t.Run(c.String(), func(t *testing.T) {
			recs := sampleRecords(10)
			orig, err := Build(Header{BaseOffset: 500, PartitionLeaderEpoch: 3, BaseTimestamp: 1000, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 5}, recs, c)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := ParseHeader(orig)
			kept := []Record{recs[2], recs[5]} // the last records go: last offset delta must stay 9
			b, err := Rebuild(h, kept)
			if err != nil {
				t.Fatal(err)
			}
			nh, err := Validate(b)
			if err != nil {
				t.Fatalf("rebuilt batch invalid: %v", err)
			}
			if nh.BaseOffset != 500 || nh.LastOffsetDelta != 9 || nh.RecordCount != 2 || nh.Compression() != c ||
				nh.BaseTimestamp != 1000 || nh.MaxTimestamp != h.MaxTimestamp || nh.PartitionLeaderEpoch != 3 ||
				nh.ProducerID != 7 || nh.ProducerEpoch != 1 || nh.BaseSequence != 5 || nh.LastSequence() != h.LastSequence() {
				t.Fatalf("header changed: %+v, was %+v", nh, h)
			}
			got, err := Records(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("%d records", len(got))
			}
			for i, r := range got {
				w := kept[i]
				if r.OffsetDelta != w.OffsetDelta || r.TimestampDelta != w.TimestampDelta || !bytes.Equal(r.Key, w.Key) ||
					!bytes.Equal(r.Value, w.Value) || len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) {
					t.Fatalf("record %d: %+v, want %+v", i, r, w)
				}
			}
			empty, err := Rebuild(h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if eh, err := Validate(empty); err != nil || eh.RecordCount != 0 || eh.LastOffsetDelta != 9 {
				t.Fatalf("empty batch: %+v %v", eh, err)
			}
		})
	}
}
