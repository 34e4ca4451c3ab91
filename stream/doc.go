// Package stream is a library for jobs that read topics, keep local state, and write topics:
// the Kafka Streams model in Go, on franz-go, against Strand or any Kafka-compatible cluster.
//
// A job is a Topology. It is built either with the typed DSL (From, Map, Filter, GroupBy,
// Count, Aggregate, To, ...) or with the processor API underneath it (AddSource,
// AddProcessor, AddSink and a Processor that reads and writes state stores, forwards records
// to its children and schedules punctuators). New turns a topology into an App and Run runs
// it as one instance of the consumer group named after the application id; more instances
// of the same program share the work, one task per input partition.
//
// Naming is explicit on purpose. Every state store and every repartition topic carries a
// name the program chose: a store named "totals" in application "orders" writes the
// compacted changelog "orders-totals-changelog", a repartition named "by-customer" the topic
// "orders-by-customer-repartition". Kafka Streams numbers unnamed ones
// (KSTREAM-AGGREGATE-STATE-STORE-0000000003), and a topology change then silently renames
// the state; here there is nothing to renumber.
//
// State lives in one Pebble database per instance (StateDir/<app-id>), shared by every task
// and store, with a fixed block cache (Config.StateMemory). The cache is on the Go heap
// (pebble without cgo), so count it in GOMEMLIMIT. The changelog offset a store reflects is
// written in the same Pebble batch as the state, so a task that starts (or comes back after
// a rebalance or a crash) restores only the changelog tail it lacks.
//
// Aggregations keep a write cache: between two commits a key's updates collapse into its
// latest value, which reaches the store, the changelog and the output once per commit
// (Kafka Streams' record cache). Windows (Tumbling, Hopping, Sessions) work on event time
// with a grace period, emit on update or once at close (EmitFinal), and with
// AdvanceWhenIdle also close on a partition that has gone quiet.
//
// Delivery is at-least-once: input offsets are committed only after every output and
// changelog record the inputs caused is acknowledged by the brokers and the state batch is
// written. A crash replays the records since the last commit.
//
// With Config.ExactlyOnce each commit is one transaction holding the outputs, the changelog
// records and the input offsets (Kafka Streams' exactly_once_v2), read_committed consumers
// see each input's effects once, and the local state is written only after its transaction
// commits. A crash between two commits does not wipe the state: the task restores the
// committed changelog tail its checkpoint lacks, read_committed.
//
// Package streamtest runs a topology without a broker, with time under the test's control.
package stream
