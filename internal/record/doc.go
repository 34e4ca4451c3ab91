// Package record reads and writes Kafka RecordBatch v2 bytes: the batch header, its CRC-32C,
// the records inside and their compression.
//
// The broker stores batches exactly as producers sent them (DESIGN D3), so this package is
// mostly about looking at bytes without copying them: ParseHeader and Validate read the
// 61-byte header and check the checksum, and the Set* functions patch the fields the broker
// owns (base offset, partition leader epoch) in place. Decoding records, which means
// decompressing, is only for the paths that need it (timestamp lookup, compaction, tools).
//
// It must never trust its input: every length is checked against the bytes actually there,
// and malformed input is an error wrapping ErrCorrupt, never a panic.
package record
