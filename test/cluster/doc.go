// Package cluster is Strand's fault-injection suite: a black-box harness that starts real
// `strand serve` processes as one cluster (on 127.0.0.1 ports, or each in a network
// namespace of its own making), drives a workload of idempotent acks=all producers and
// plain consumers, injects faults (kill -9, SIGSTOP, SIGTERM, a cut or slow link, a full
// disk), records a history of every operation and its outcome, and checks it.
//
// The checks (checker.go) are pure functions of a History, each shown to fail on a
// hand-made history in checker_test.go: acknowledged writes lost, duplicates, records out
// of order, offsets reused for different records (and positions acknowledged twice),
// stale reads (a value a consumer saw that later disappeared or changed), writes
// acknowledged while fewer than min.insync.replicas were up, producer ids shared by two
// producers, and unavailability (the widest gap in acknowledgements after a fault). After
// the final read the replicas' logs are compared on disk (replicas.go). Each scenario
// prints one row; TestMain prints the table of all scenarios run.
//
// Running:
//
//	go test ./test/cluster/                      short form: every scenario once, ~2 minutes
//	STRAND_FAULTS_LONG=1 go test -timeout 20m ./test/cluster/
//	                                             3x the repetitions, 2x the fault time, 5 nodes
//	go test -short ./test/cluster/               only the pure checker tests
//
// Scenarios with network faults need root and `ip netns` (tc tbf for the slow link; netem
// is not used), the full-disk ones root and tmpfs; without them they skip and say why.
// Multi-node scenarios first probe, once, that three voters form a ready cluster, and fail
// with the probe's reason when they cannot.
//
// Other knobs: STRAND_FAULTS_BIN runs a strand binary built elsewhere instead of building
// ./cmd/strand; STRAND_FAULTS_BROKER_CONFIGS (name=value,...) replaces the static broker
// configs passed to every node (by default the fast-failure-detection ones this build
// knows); STRAND_FAULTS_OUT=dir keeps each scenario's history as JSON.
package cluster
