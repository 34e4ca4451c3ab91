// Package broker answers Kafka requests: it ties the wire (internal/kafka) to the local
// partition replicas (internal/partition) and the cluster metadata (internal/cluster),
// and runs the node's listeners. Every Kafka error code the node sends is chosen in
// errors.go; handlers never invent codes of their own.
//
// It also owns the node's log maintenance (cleaner.go): one goroutine applies each topic's
// retention (cleanup.policy=delete) to every local partition, another its compaction
// (cleanup.policy=compact, which includes __consumer_offsets) with one journal.Cleaner.
//
// It never encodes protocol messages by hand except the Fetch response, whose record bytes
// go from segment files to the socket without a copy (fetch_encode.go).
package broker
