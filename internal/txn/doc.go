// Package txn is the transaction coordinator (KIP-98, KIP-360, KIP-664, KIP-890 part 1):
// it answers InitProducerId for transactional ids, AddPartitionsToTxn (the client's
// versions and the brokers' batched VerifyOnly form), AddOffsetsToTxn, EndTxn,
// DescribeTransactions and ListTransactions, aborts transactions
// that outlive their timeout, expires idle transactional ids, and drives every commit or
// abort to its end by having the end markers written into each partition of the
// transaction.
//
// Its state is the compacted internal topic __transaction_state, in Kafka's own key and
// value schemas (kmsg.TxnMetadataKey / kmsg.TxnMetadataValue), so the bytes on disk are
// Kafka's (DESIGN D11). Like Kafka's TransactionStateManager, every state change is first
// written to the partition of its transactional id and takes effect in memory only once
// that write is committed; the table is rebuilt by replaying the partition when this node
// becomes its leader (Load).
//
// The package owns transaction state and nothing else: it never opens files or sockets.
// The broker hands it each __transaction_state partition it leads as a Log, allocates
// producer ids for it (Env), and delivers markers (Markers, which the broker implements
// with WriteTxnMarkers to the partition leaders).
package txn
