package record

import (
	"encoding/binary"
	"fmt"
)

// Record is one record of a batch, with its deltas relative to the batch header.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil is a null key
	Value          []byte // nil is a null value (a tombstone)
	Headers        []RecordHeader
}

// RecordHeader is one record header.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Records decodes every record of a batch, decompressing if needed. The returned slices
// may alias the batch (uncompressed) or a fresh buffer (compressed).
func Records(batch []byte) ([]Record, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return nil, err
	}
	if h.Size() > len(batch) {
		return nil, fmt.Errorf("%w: batch truncated", ErrCorrupt)
	}
	if h.Size() < HeaderSize {
		return nil, fmt.Errorf("%w: batch length %d shorter than its header", ErrCorrupt, h.BatchLength)
	}
	body, err := Decompress(h.Compression(), batch[HeaderSize:h.Size()])
	if err != nil {
		return nil, err
	}
	if h.RecordCount < 0 || int(h.RecordCount) > len(body) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, h.RecordCount, len(body))
	}
	recs := make([]Record, 0, h.RecordCount)
	d := decoder{b: body}
	for i := int32(0); i < h.RecordCount; i++ {
		r, err := d.record()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		recs = append(recs, r)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(d.b))
	}
	return recs, nil
}

type decoder struct{ b []byte }

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrCorrupt)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) bytes() ([]byte, error) {
	n, err := d.varint()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > int64(len(d.b)) {
		return nil, fmt.Errorf("%w: field of %d bytes, %d left", ErrCorrupt, n, len(d.b))
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) record() (Record, error) {
	length, err := d.varint()
	if err != nil {
		return Record{}, err
	}
	if length < 0 || length > int64(len(d.b)) {
		return Record{}, fmt.Errorf("%w: record of %d bytes, %d left", ErrCorrupt, length, len(d.b))
	}
	rd := decoder{b: d.b[:length]}
	d.b = d.b[length:]
	var r Record
	if len(rd.b) < 1 {
		return r, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	r.Attributes = int8(rd.b[0])
	rd.b = rd.b[1:]
	if r.TimestampDelta, err = rd.varint(); err != nil {
		return r, err
	}
	delta, err := rd.varint()
	if err != nil {
		return r, err
	}
	r.OffsetDelta = int32(delta)
	if r.Key, err = rd.bytes(); err != nil {
		return r, err
	}
	if r.Value, err = rd.bytes(); err != nil {
		return r, err
	}
	count, err := rd.varint()
	if err != nil {
		return r, err
	}
	if count < 0 || count > int64(len(rd.b)) {
		return r, fmt.Errorf("%w: %d headers", ErrCorrupt, count)
	}
	for i := int64(0); i < count; i++ {
		k, err := rd.bytes()
		if err != nil {
			return r, err
		}
		v, err := rd.bytes()
		if err != nil {
			return r, err
		}
		r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
	}
	if len(rd.b) != 0 {
		return r, fmt.Errorf("%w: %d bytes left in a record", ErrCorrupt, len(rd.b))
	}
	return r, nil
}

// Build encodes records into a complete, checksummed v2 batch. From h it takes the base
// offset, leader epoch, attributes other than compression, base timestamp, producer
// fields and base sequence; it computes the length, record count, last offset delta
// (from the last record's OffsetDelta), max timestamp and CRC.
func Build(h Header, recs []Record, c Codec) ([]byte, error) {
	var body []byte
	maxTS := h.BaseTimestamp
	for _, r := range recs {
		body = appendRecord(body, r)
		if ts := h.BaseTimestamp + r.TimestampDelta; ts > maxTS {
			maxTS = ts
		}
	}
	compressed, err := Compress(c, body)
	if err != nil {
		return nil, err
	}
	b := make([]byte, HeaderSize, HeaderSize+len(compressed))
	b = append(b, compressed...)
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(b[offBatchLength:], uint32(len(b)-batchLengthOverhead))
	be.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = 2
	attrs := uint16(h.Attributes)&^attrCompressionMask | uint16(c)
	be.PutUint16(b[offAttributes:], attrs)
	var lastDelta int32
	if len(recs) > 0 {
		lastDelta = recs[len(recs)-1].OffsetDelta
	}
	be.PutUint32(b[offLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	if h.MaxTimestamp > maxTS {
		maxTS = h.MaxTimestamp
	}
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTS))
	be.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(b[offRecordCount:], uint32(len(recs)))
	be.PutUint32(b[offCRC:], Checksum(b))
	return b, nil
}

func appendRecord(dst []byte, r Record) []byte {
	var body []byte
	body = append(body, byte(r.Attributes))
	body = binary.AppendVarint(body, r.TimestampDelta)
	body = binary.AppendVarint(body, int64(r.OffsetDelta))
	body = appendBytes(body, r.Key)
	body = appendBytes(body, r.Value)
	body = binary.AppendVarint(body, int64(len(r.Headers)))
	for _, h := range r.Headers {
		body = appendBytes(body, []byte(h.Key))
		body = appendBytes(body, h.Value)
	}
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}

func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}
