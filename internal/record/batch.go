package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 RecordBatch header, up to and including the record count.
const HeaderSize = 61

// Offsets of the header fields inside a batch (Kafka's DefaultRecordBatch layout).
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// batchLengthOverhead is the part of the batch that batchLength does not count:
	// the base offset and the length field itself.
	batchLengthOverhead = 12
)

// Attribute bits.
const (
	attrCompressionMask = 0x07
	attrTimestampType   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// ErrCorrupt is wrapped by every error about malformed batch bytes; the broker maps it to
// Kafka's CORRUPT_MESSAGE.
var ErrCorrupt = errors.New("corrupt record batch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the fixed part of a v2 RecordBatch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// ParseHeader decodes the header at the start of b without checking the CRC.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(be.Uint32(b[offRecordCount:])),
	}, nil
}

// Size is the total number of bytes of the batch, header included.
func (h Header) Size() int { return batchLengthOverhead + int(h.BatchLength) }

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset after the batch's last record.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the codec the records are compressed with.
func (h Header) Compression() Codec { return Codec(h.Attributes & attrCompressionMask) }

// IsTransactional reports whether the batch belongs to a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch holds a control record (transaction marker).
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// TimestampType is 0 for CreateTime and 1 for LogAppendTime.
func (h Header) TimestampType() int {
	if h.Attributes&attrTimestampType != 0 {
		return 1
	}
	return 0
}

// LastSequence is the sequence number of the batch's last record, wrapping like Kafka's.
func (h Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	return IncrementSequence(h.BaseSequence, h.LastOffsetDelta)
}

// IncrementSequence adds n to a producer sequence number, wrapping at MaxInt32 to 0 as Kafka does.
func IncrementSequence(seq, n int32) int32 {
	if seq > (1<<31-1)-n {
		return n - ((1<<31 - 1) - seq) - 1
	}
	return seq + n
}

// maxBatchLength bounds the claimed length so that a garbage header never makes a caller
// allocate or wait for gigabytes.
const maxBatchLength = 1<<30 - batchLengthOverhead

// Validate checks one whole batch: the header is sane, the claimed length matches len(b),
// and the CRC-32C over attributes..end matches. It returns the parsed header.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if err := h.checkFields(); err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batch length %d does not match the %d bytes given", ErrCorrupt, h.Size(), len(b))
	}
	if sum := crc32.Checksum(b[offAttributes:], castagnoli); sum != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, computed %08x", ErrCorrupt, h.CRC, sum)
	}
	return h, nil
}

// checkFields validates what can be checked from the header alone.
func (h Header) checkFields() error {
	switch {
	case h.Magic != 2:
		return fmt.Errorf("%w: magic %d, only 2 is supported", ErrCorrupt, h.Magic)
	case int(h.BatchLength) < HeaderSize-batchLengthOverhead || h.BatchLength > maxBatchLength:
		return fmt.Errorf("%w: batch length %d out of range", ErrCorrupt, h.BatchLength)
	case h.RecordCount < 0:
		return fmt.Errorf("%w: record count %d", ErrCorrupt, h.RecordCount)
	case h.LastOffsetDelta < 0:
		return fmt.Errorf("%w: last offset delta %d", ErrCorrupt, h.LastOffsetDelta)
	case h.RecordCount > 0 && int64(h.LastOffsetDelta) < int64(h.RecordCount)-1:
		return fmt.Errorf("%w: %d records but last offset delta %d", ErrCorrupt, h.RecordCount, h.LastOffsetDelta)
	case h.Compression() > CodecZstd:
		return fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, h.Compression())
	}
	return nil
}

// ValidateProduced adds the checks the broker makes on a batch that a producer sent: it must
// hold at least one record, and its offsets must be dense (last offset delta = count-1),
// because offsets are assigned by the broker.
func ValidateProduced(b []byte) (Header, error) {
	h, err := Validate(b)
	if err != nil {
		return h, err
	}
	if h.RecordCount == 0 {
		return h, fmt.Errorf("%w: batch holds no records", ErrCorrupt)
	}
	if int64(h.LastOffsetDelta) != int64(h.RecordCount)-1 {
		return h, fmt.Errorf("%w: %d records but last offset delta %d", ErrCorrupt, h.RecordCount, h.LastOffsetDelta)
	}
	return h, nil
}

// Produced is a producer's batches, walked and checked once by SplitProduced, so that the
// broker's checks and the journal's append share one CRC pass.
type Produced struct {
	Bytes   []byte   // the batches, concatenated as they arrived
	Batches [][]byte // subslices of Bytes, one per batch
	Headers []Header // each batch's header, checked by ValidateProduced
}

// SplitProduced walks a producer's concatenated batches, checking each with
// ValidateProduced (one CRC pass). There must be at least one.
func SplitProduced(b []byte) (Produced, error) {
	p := Produced{Bytes: b}
	for rest := b; len(rest) > 0; {
		n, err := PeekSize(rest)
		if err != nil {
			return Produced{}, err
		}
		if n > len(rest) {
			return Produced{}, fmt.Errorf("%w: batch of %d bytes truncated to %d", ErrCorrupt, n, len(rest))
		}
		h, err := ValidateProduced(rest[:n])
		if err != nil {
			return Produced{}, err
		}
		p.Batches, p.Headers = append(p.Batches, rest[:n]), append(p.Headers, h)
		rest = rest[n:]
	}
	if len(p.Batches) == 0 {
		return Produced{}, fmt.Errorf("%w: no batches", ErrCorrupt)
	}
	return p, nil
}

// Split walks concatenated batches, validating each, and returns them as subslices of b.
// Any truncated or invalid batch fails the whole call.
func Split(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, err := PeekSize(b)
		if err != nil {
			return nil, err
		}
		if n > len(b) {
			return nil, fmt.Errorf("%w: batch of %d bytes truncated to %d", ErrCorrupt, n, len(b))
		}
		if _, err := Validate(b[:n]); err != nil {
			return nil, err
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// PeekSize returns the total size a batch starting at b claims, from its length field,
// checking that the claim is sane. b needs at least the first 17 bytes (through magic).
func PeekSize(b []byte) (int, error) {
	if len(b) < offMagic+1 {
		return 0, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	length := int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	if int(length) < HeaderSize-batchLengthOverhead || length > maxBatchLength {
		return 0, fmt.Errorf("%w: batch length %d out of range", ErrCorrupt, length)
	}
	if b[offMagic] != 2 {
		return 0, fmt.Errorf("%w: magic %d, only 2 is supported", ErrCorrupt, int8(b[offMagic]))
	}
	return batchLengthOverhead + int(length), nil
}

// SetBaseOffset overwrites the base offset; the CRC does not cover it.
func SetBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off)) }

// SetPartitionLeaderEpoch overwrites the partition leader epoch; the CRC does not cover it.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetMaxTimestampLogAppend marks the batch's timestamps as LogAppendTime with the given time
// and recomputes the CRC, as a broker with message.timestamp.type=LogAppendTime does.
func SetMaxTimestampLogAppend(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | attrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// Checksum is the CRC-32C a batch's CRC field must hold.
func Checksum(b []byte) uint32 { return crc32.Checksum(b[offAttributes:], castagnoli) }
