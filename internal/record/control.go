package record

import (
	"encoding/binary"
	"fmt"
)

// ControlType is the type of a control record, from its key (Kafka's ControlRecordType).
type ControlType int16

// Control record types. Only the transaction markers concern a partition's data; Kafka
// uses the others in its own metadata log.
const (
	ControlAbort  ControlType = 0
	ControlCommit ControlType = 1
)

// EndTxnMarker is the content of a transaction marker: a control batch holding one control
// record whose key is (version 0, type ABORT or COMMIT) and whose value is (version 0,
// coordinator epoch), as Kafka's EndTransactionMarker writes it. The producer id and epoch
// are those of the batch header.
type EndTxnMarker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
}

const (
	controlKeySize     = 4 // int16 version, int16 type
	endTxnValueSize    = 6 // int16 version, int32 coordinator epoch
	controlKeyVersion  = 0
	endTxnValueVersion = 0
)

// BuildEndTxnMarker encodes a marker as a complete, checksummed control batch at offset 0
// (the journal assigns the offset). timestamp is the record's and the batch's time, and
// leaderEpoch the partition leader epoch to stamp.
func BuildEndTxnMarker(m EndTxnMarker, timestamp int64, leaderEpoch int32) []byte {
	typ := ControlAbort
	if m.Commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(make([]byte, 0, controlKeySize), controlKeyVersion)
	key = binary.BigEndian.AppendUint16(key, uint16(typ))
	value := binary.BigEndian.AppendUint16(make([]byte, 0, endTxnValueSize), endTxnValueVersion)
	value = binary.BigEndian.AppendUint32(value, uint32(m.CoordinatorEpoch))
	b, err := Build(Header{PartitionLeaderEpoch: leaderEpoch, Attributes: attrTransactional | attrControl, BaseTimestamp: timestamp,
		ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, BaseSequence: -1},
		[]Record{{Key: key, Value: value}}, CodecNone)
	if err != nil {
		panic(fmt.Sprintf("encoding an uncompressed marker cannot fail: %v", err)) // our invariant
	}
	return b
}

// ParseControlKey reads a control record's key. Like Kafka, it accepts key versions newer
// than 0 (the key is meant to stay backwards compatible) and rejects negative ones.
func ParseControlKey(key []byte) (ControlType, error) {
	if len(key) < controlKeySize {
		return 0, fmt.Errorf("%w: control record key of %d bytes", ErrCorrupt, len(key))
	}
	if v := int16(binary.BigEndian.Uint16(key)); v < 0 {
		return 0, fmt.Errorf("%w: control record key version %d", ErrCorrupt, v)
	}
	return ControlType(binary.BigEndian.Uint16(key[2:])), nil
}

// ParseEndTxnMarker decodes the transaction marker of a control batch (one whole batch,
// checked with Validate). It fails for a batch that is not a control batch, does not hold
// exactly one record, or whose record is another kind of control record.
func ParseEndTxnMarker(batch []byte) (EndTxnMarker, error) {
	h, err := Validate(batch)
	if err != nil {
		return EndTxnMarker{}, err
	}
	if !h.IsControl() {
		return EndTxnMarker{}, fmt.Errorf("%w: not a control batch", ErrCorrupt)
	}
	recs, err := Records(batch)
	if err != nil {
		return EndTxnMarker{}, err
	}
	if len(recs) != 1 {
		return EndTxnMarker{}, fmt.Errorf("%w: control batch holds %d records, a marker holds 1", ErrCorrupt, len(recs))
	}
	typ, err := ParseControlKey(recs[0].Key)
	if err != nil {
		return EndTxnMarker{}, err
	}
	if typ != ControlAbort && typ != ControlCommit {
		return EndTxnMarker{}, fmt.Errorf("%w: control record type %d is not a transaction marker", ErrCorrupt, typ)
	}
	v := recs[0].Value
	// Kafka parses newer value versions as version 0; a negative one is garbage.
	if len(v) < endTxnValueSize || int16(binary.BigEndian.Uint16(v)) < 0 {
		return EndTxnMarker{}, fmt.Errorf("%w: transaction marker value of %d bytes", ErrCorrupt, len(v))
	}
	return EndTxnMarker{ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, Commit: typ == ControlCommit,
		CoordinatorEpoch: int32(binary.BigEndian.Uint32(v[2:]))}, nil
}
