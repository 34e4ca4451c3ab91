// Package broker answers Kafka requests: it ties the wire (internal/kafka) to the local
// partition replicas (internal/partition) and the cluster metadata (internal/cluster),
// and runs the node's listeners. Every Kafka error code the node sends is chosen in
// errors.go; handlers never invent codes of their own.
//
// It never encodes protocol messages by hand except the Fetch response, whose record bytes
// go from segment files to the socket without a copy (fetch_encode.go).
package broker
