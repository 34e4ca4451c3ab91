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
// The transactional checks (txnhistory.go, txncheck.go, txnchain.go, txnreport.go; issue
// 13) are pure functions of a TxnHistory: transactions with their sends and how their
// producers saw them end (committed, aborted, or unknown when EndTxn failed), what
// read_committed and read_uncommitted consumers returned in poll order, a final
// read_committed read of every partition, and optionally the commit and abort markers of a
// raw read. They count aborted reads, committed records lost, duplicates, transactions a
// read_committed consumer saw partially in a range it read through, records out of their
// transaction's order, late writes (a record of transaction N after N+1's or after N's own
// marker: the delayed Produce of KAFKA-17754), indeterminate transactions resolved
// partially, and, for an ETL chain, input records not in the last topic exactly once in
// per-key order. txncheck_test.go shows each failing on a hand-made history; TxnReport.Row
// is the table row issue 13's note carries per scenario.
//
// The integrity scenarios (integrity_test.go, issue 8) damage what a node has on disk or make
// its disk lie or fail, under the same load: a bit flipped in a closed segment of a follower,
// of the leader, of two replicas at different offsets (5 nodes, RF 5); the newest segments
// of a leader cut to half while it is down; every node killed at once, 30 times; an OS crash
// of one node while another is paused and a third cut off; EIO on write, fsync and read of
// one partition's files on its leader. Each must lose nothing acknowledged, end with replicas
// byte-identical below the high watermark (batch by batch and by a sha256 of the batches on
// every node) and data dirs that `strand debug verify` finds clean after a SIGTERM stop.
// Each prints a row of IntegrityHeader: damage found, repairs and partitions taken offline
// are counted from the nodes' logs; TestMain prints the integrity table after the faults'.
//
// Two hidden `strand serve` flags exist for these scenarios only (never for a real node):
//
//	--unsafe-volatile-writes  the journal and metadata files go through vfs.Volatile: data
//	                          stays in process memory until synced, so kill -9 loses what
//	                          an OS crash would (names are durable at once; see vfs.Volatile)
//	--unsafe-disk-faults      the files go through vfs.Faulty, steered over HTTP:
//	                          POST /v1/internal/disk-faults {"ops":"write,sync","path":"t-0/",
//	                          "kind":"error|short|bitflip","after":0,"times":0,"err":"EIO|ENOSPC"},
//	                          DELETE to clear every rule, GET for {"fired": n}
//
// The integrity runs also pass --scrub-idle 200ms where they wait for the scrubber, and
// log.flush.offset.checkpoint.interval.ms=500 so a cut file is known as lost acknowledged
// data. STRAND_FAULTS_OUT=dir also keeps every integrity run's node logs there.
//
// Running:
//
//	go test ./test/cluster/                      short form: every scenario once, ~6 minutes
//	go test ./test/cluster/ -run TestIntegrity -v  the integrity scenarios, ~4 minutes
//	STRAND_FAULTS_LONG=1 go test -timeout 20m ./test/cluster/
//	                                             3x the repetitions, 2x the fault time, 5 nodes,
//	                                             100 all-node crashes
//	go test -short ./test/cluster/               only the pure checker tests
//	go test -run Txn ./test/cluster/             only the transactional checker tests
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
