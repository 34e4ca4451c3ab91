// Package bench is the load generator behind `strand bench`: it produces, consumes, or
// does both at once against any Kafka-compatible cluster through franz-go (DESIGN D2), and
// reports throughput and latency percentiles from HDR histograms.
//
// Latency is measured the way it is felt: produce latency from the moment a record was due
// to be sent (its intended time under --rate, so a stalled broker cannot hide behind a
// stalled load generator) to its acknowledgement; end-to-end latency from the record's
// send timestamp to the moment a consumer sees it.
//
// It owns no broker code and must never import one: it talks only over the wire.
package bench
