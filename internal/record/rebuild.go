package record

import "encoding/binary"

// Rebuild re-encodes a batch that keeps only some of its records, as the log cleaner does.
// Everything the header says about the batch's place in the log stays as in h: base
// offset, last offset delta (so the offsets after the batch and an idempotent producer's
// sequence range are unchanged even when its last records are gone), leader epoch,
// attributes, codec, base and max timestamps and the producer fields. Records keep their
// offset and timestamp deltas. The record count, length and CRC are computed. recs may be
// empty: the batch then only carries its header (Kafka keeps such batches for producer state).
func Rebuild(h Header, recs []Record) ([]byte, error) {
	b, err := Build(Header{BaseOffset: h.BaseOffset, PartitionLeaderEpoch: h.PartitionLeaderEpoch, Attributes: h.Attributes,
		BaseTimestamp: h.BaseTimestamp, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, BaseSequence: h.BaseSequence}, recs, h.Compression())
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
	return b, nil
}
