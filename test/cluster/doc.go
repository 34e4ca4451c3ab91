// Package cluster is Strand's fault-injection suite: a black-box harness that starts real
// `strand serve` processes as one cluster (on 127.0.0.1 ports, or each in a network
// namespace of its own making), drives a workload of idempotent acks=all producers and
// plain consumers, injects faults (kill -9, SIGSTOP, SIGTERM, a cut or slow link, a full
// disk), records a history of every operation and its outcome, and checks it.
//
// The checks (checker.go) are pure functions of a History: acknowledged writes lost,
// duplicates, records out of order or offsets reused, stale reads, and unavailability.
// Each scenario prints one row; TestMain prints the table of all scenarios run.
//
// `go test ./test/cluster/` runs the short form; STRAND_FAULTS_LONG=1 runs more
// repetitions and 5-node variants. Under -short only the pure checker tests run.
package cluster
