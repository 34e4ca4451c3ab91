// Package group is the consumer group coordinator: the classic rebalance protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets, and group
// administration (describe, list, delete), and the transactional offset commits of KIP-447
// (TxnOffsetCommit, txnoffsets.go), pending until the broker reports the transaction's
// marker with CompleteTransaction. Group metadata and offsets are records of the
// compacted internal topic __consumer_offsets, in Kafka's own key and value schemas, and
// the coordinator rebuilds its tables by replaying that topic's partitions (DESIGN D7).
//
// It owns group state and nothing else: it never opens files or sockets. The broker hands
// it each __consumer_offsets partition it leads as an OffsetsLog, and relays the group
// APIs to Handle; answers that must wait (a rebalance, an fsync) come back as a wait
// function the broker turns into a pending answer.
package group
