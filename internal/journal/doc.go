// Package journal owns one partition's log on disk: a directory of segments holding Kafka
// RecordBatch v2 bytes verbatim (DESIGN D3), their sparse offset and time indexes, the
// checkpoints that make recovery cheap (recovery point, log start offset, leader epochs,
// producer state), and the fsync policy that decides when an append is durable (D4).
//
// Layout of a partition directory:
//
//	00000000000000000000.log        batches, byte for byte as produced, offsets patched in
//	00000000000000000000.index      sparse offset index: (relative offset, position), 8 bytes each
//	00000000000000000000.timeindex  time index: (max timestamp before, relative offset), 12 bytes each
//	00000000000000000000.txnindex   aborted transactions whose markers the segment holds, Kafka's
//	                                34-byte entries; only when there are some (txn.go)
//	00000000000000001000.snapshot   producer state (idempotence, epochs, coordinator epochs, last
//	                                timestamps, open transactions) as of offset 1000; version 3
//	                                (producer.go), versions 1 and 2 still read
//	checkpoint                      recovery point and log start offset, checksummed
//	leader-epoch-checkpoint         (epoch, start offset) pairs, checksummed
//	cleaner-checkpoint              how far the cleaner has compacted, and when (tombstone timing)
//	*.deleted                       segments waiting for readers to finish before removal
//	<base>-<end>.cleaned            a cleaned copy of the segments in [base, end), not yet decided
//	<base>-<end>.swap               a cleaned copy decided to replace the segments in [base, end)
//
// Index files are written when a segment is closed (rolled) and on a clean Close, each with a
// trailer describing the segment they index; a missing, stale or damaged index is rebuilt
// by scanning the segment. Segments past the recovery point are re-validated batch by batch
// on Open, and a torn or corrupt tail is truncated.
//
// Retention (retention.go) deletes whole closed segments by the age of their newest record
// or the partition's size and moves the log start offset. The cleaner (clean.go) compacts
// closed segments of cleanup.policy=compact logs to the latest record per key, keeping
// offsets, timestamps, headers and codecs, with a fixed-size key map (cleanmap.go) and an
// I/O throttle (throttle.go). Recovery rule for its files (swap.go): on Open a .cleaned file
// is deleted (the old segments are intact); a .swap file completes: every .log whose base
// is in [base, end) is deleted and the .swap is renamed <base>.log. So a crash at any point
// of a pass leaves either the old segments or the cleaned one.
//
// Damage detection (issue 8): Verify (verify*.go) checks a partition directory offline and
// read-only, for `strand debug verify`; Scrub (scrub.go) re-reads closed segments of an open
// log at a throttled rate and ValidateRead checks batches before a leader sends them to a
// follower. Both record the lowest damaged offset (Damaged); the broker refuses fetches
// into that range. The batch CRC does not cover the base offset or the partition leader
// epoch, so damage there is found only through offsets going backwards or index trailers.
//
// Transactions (txn.go): the journal tracks each producer's open transaction, the first
// unstable offset the LSO derives from, and per segment the aborted transactions (.txnindex)
// that read_committed fetches send. The leader writes markers with AppendMarker (marker.go),
// which refuses stale producer and coordinator epochs as Kafka's ProducerAppendInfo does;
// KIP-890 verification guards (verify_txn.go) keep a produce that its transaction's marker
// overtook from opening a transaction; idle producers expire (ExpireProducers); the cleaner
// removes aborted records and, after delete.retention.ms, markers with no data left
// (clean_txn.go).
//
// The journal never interprets records beyond the batch header on the write path (no
// decompression on append; only a transaction marker's one record is read there, and the
// cleaner decodes records, off that path) and never blocks readers on writers: readers see
// a segment up to the size published after the last complete append.
package journal
