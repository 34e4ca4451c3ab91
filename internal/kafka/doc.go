// Package kafka is the Kafka wire: a TCP listener that reads size-prefixed request frames,
// decodes their headers and bodies with franz-go's kmsg (DESIGN D1), hands each request to
// a Handler in request order, and writes the answers back in that same order while later
// requests of the connection are already being handled (clients pipeline).
//
// It owns framing, ordering, backpressure and connection lifetimes. It never interprets a
// request's meaning: that is the broker's. Malformed input closes the offending connection
// and nothing else; a claimed frame size is never allocated before the bytes arrive.
package kafka
