package record

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestEndTxnMarkerRoundTrip(t *testing.T) {
	for _, m := range []EndTxnMarker{
		{ProducerID: 7, ProducerEpoch: 3, Commit: true, CoordinatorEpoch: 12},
		{ProducerID: 1 << 40, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: -1},
	} {
		b := BuildEndTxnMarker(m, 1700000000000, 5)
		h, err := Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.RecordCount != 1 || h.BaseSequence != -1 ||
			h.PartitionLeaderEpoch != 5 || h.MaxTimestamp != 1700000000000 {
			t.Fatalf("marker header %+v", h)
		}
		got, err := ParseEndTxnMarker(b)
		if err != nil || got != m {
			t.Fatalf("parsed %+v, %v; want %+v", got, err, m)
		}

		// kmsg, generated from Kafka's own schemas, reads the same batch, key and value.
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if kb.Attributes&0x30 != 0x30 || kb.ProducerID != m.ProducerID || kb.ProducerEpoch != m.ProducerEpoch {
			t.Fatalf("kmsg batch %+v", kb)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(kb.Records); err != nil {
			t.Fatal(err)
		}
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(kr.Key); err != nil {
			t.Fatal(err)
		}
		var val kmsg.EndTxnMarker
		if err := val.ReadFrom(kr.Value); err != nil {
			t.Fatal(err)
		}
		wantType := kmsg.ControlRecordKeyTypeAbort
		if m.Commit {
			wantType = kmsg.ControlRecordKeyTypeCommit
		}
		if key.Version != 0 || key.Type != wantType || val.Version != 0 || val.CoordinatorEpoch != m.CoordinatorEpoch {
			t.Fatalf("kmsg key %+v value %+v", key, val)
		}
	}
}

// A marker whose key and value kmsg encoded parses the same.
func TestParseEndTxnMarkerFromKmsg(t *testing.T) {
	key := (&kmsg.ControlRecordKey{Version: 0, Type: kmsg.ControlRecordKeyTypeCommit}).AppendTo(nil)
	val := (&kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: 9}).AppendTo(nil)
	b, err := Build(Header{Attributes: attrControl | attrTransactional, ProducerID: 4, ProducerEpoch: 2, BaseSequence: -1},
		[]Record{{Key: key, Value: val}}, CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseEndTxnMarker(b)
	if want := (EndTxnMarker{ProducerID: 4, ProducerEpoch: 2, Commit: true, CoordinatorEpoch: 9}); err != nil || m != want {
		t.Fatalf("got %+v, %v; want %+v", m, err, want)
	}
}

func TestParseEndTxnMarkerRejects(t *testing.T) {
	control := func(key, value []byte, n int) []byte {
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = Record{OffsetDelta: int32(i), Key: key, Value: value}
		}
		b, err := Build(Header{Attributes: attrControl | attrTransactional, ProducerID: 1, BaseSequence: -1}, recs, CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	okValue := []byte{0, 0, 0, 0, 0, 1}
	notControl, err := Build(Header{ProducerID: 1, BaseSequence: -1}, []Record{{Key: []byte{0, 0, 0, 1}, Value: okValue}}, CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"not control":         notControl,
		"two records":         control([]byte{0, 0, 0, 1}, okValue, 2),
		"short key":           control([]byte{0, 0, 0}, okValue, 1),
		"negative key":        control([]byte{0xff, 0xff, 0, 1}, okValue, 1),
		"leader change type":  control([]byte{0, 0, 0, 2}, okValue, 1),
		"short value":         control([]byte{0, 0, 0, 1}, okValue[:5], 1),
		"negative value vers": control([]byte{0, 0, 0, 1}, []byte{0x80, 0, 0, 0, 0, 1}, 1),
		"truncated":           BuildEndTxnMarker(EndTxnMarker{ProducerID: 1}, 0, 0)[:HeaderSize+3],
	} {
		if _, err := ParseEndTxnMarker(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzParseEndTxnMarker(f *testing.F) {
	f.Add(BuildEndTxnMarker(EndTxnMarker{ProducerID: 3, Commit: true, CoordinatorEpoch: 1}, 5, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseEndTxnMarker(b)
		if err != nil {
			return
		}
		again, err := ParseEndTxnMarker(BuildEndTxnMarker(m, 0, 0))
		if err != nil || again != m {
			t.Fatalf("re-encoded %+v parses as %+v, %v", m, again, err)
		}
	})
}

// Records is given unchecked bytes by tools: a length field shorter than the header must be
// an error, not a panic (found by FuzzParseEndTxnMarker).
func TestRecordsShortBatchLength(t *testing.T) {
	b := BuildEndTxnMarker(EndTxnMarker{ProducerID: 1}, 0, 0)
	b[offBatchLength], b[offBatchLength+1], b[offBatchLength+2], b[offBatchLength+3] = 0, 0, 0, 10
	if _, err := Records(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
}
