// Package compat runs Kafka clients nobody here wrote against a real `strand serve`:
// franz-go in process, kcat, kafka-python and confluent-kafka (librdkafka) from Python,
// and kafkajs from Node, asserting every record they produce and consume.
package compat
