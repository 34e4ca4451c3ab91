// Package auth holds what a connection needs to say who is on the other end: TLS
// configuration with certificates that reload when their files change, Kafka's
// ssl.principal.mapping.rules, and the server side of SASL PLAIN and SCRAM (RFC 5802/7677).
//
// It never stores or logs a password: SCRAM credentials are salt, iterations, StoredKey
// and ServerKey, as Kafka keeps them, and PLAIN is checked by deriving StoredKey from the
// offered password. It does no I/O on the network; internal/kafka drives it.
//
// A principal is Kafka's "User:<name>" string; the authorizer (later) reads it from the
// connection.
package auth
