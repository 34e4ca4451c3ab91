package txn

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fuzzKinds are the request types FuzzTxnRequests decodes.
var fuzzKinds = []func() kmsg.Request{
	func() kmsg.Request { return kmsg.NewPtrInitProducerIDRequest() },
	func() kmsg.Request { return kmsg.NewPtrAddPartitionsToTxnRequest() },
	func() kmsg.Request { return kmsg.NewPtrAddOffsetsToTxnRequest() },
	func() kmsg.Request { return kmsg.NewPtrEndTxnRequest() },
	func() kmsg.Request { return kmsg.NewPtrDescribeTransactionsRequest() },
	func() kmsg.Request { return kmsg.NewPtrListTransactionsRequest() },
}

// fuzzFrame encodes one step of a fuzz input: kind, version, body length, body.
func fuzzFrame(kind byte, req kmsg.Request) []byte {
	body := req.AppendTo(nil)
	if len(body) > 255 {
		panic("seed request too long")
	}
	return append([]byte{kind, byte(req.GetVersion()), byte(len(body))}, body...)
}

// FuzzTxnRequests decodes fuzz bytes into a sequence of coordinator requests (kmsg
// ReadFrom, at any version) mixed with clock steps, timeout aborts, id expiry and spells
// of a log that refuses writes, and
// feeds them to Handle. Nothing may panic, and once the background work settles the table
// must be consistent: no state Kafka never installs, partitions only where a transaction
// is open, and a replay of the log rebuilding exactly the table in memory.
func FuzzTxnRequests(f *testing.F) {
	id := "tx"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, &id, 5000
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, id, 1000, 0
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "a", Partitions: []int32{0, 1}}}
	verify := kmsg.NewPtrAddPartitionsToTxnRequest()
	verify.Version = 4
	verify.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: id, ProducerID: 1000, ProducerEpoch: 0, VerifyOnly: true,
		Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "a", Partitions: []int32{0, 2}}}}}
	offsets := kmsg.NewPtrAddOffsetsToTxnRequest()
	offsets.Version, offsets.TransactionalID, offsets.ProducerID, offsets.ProducerEpoch, offsets.Group = 3, id, 1000, 0, "g"
	commit := kmsg.NewPtrEndTxnRequest()
	commit.Version, commit.TransactionalID, commit.ProducerID, commit.ProducerEpoch, commit.Commit = 3, id, 1000, 0, true
	abort := kmsg.NewPtrEndTxnRequest()
	abort.Version, abort.TransactionalID, abort.ProducerID, abort.ProducerEpoch = 3, id, 1000, 1
	describe := kmsg.NewPtrDescribeTransactionsRequest()
	describe.TransactionalIDs = []string{id, "other"}
	list := kmsg.NewPtrListTransactionsRequest()
	list.Version, list.StateFilters, list.DurationFilterMillis = 1, []string{"Ongoing", "x"}, 10

	var seq []byte
	for _, step := range []struct {
		kind byte
		req  kmsg.Request
	}{{0, init}, {1, add}, {1, verify}, {2, offsets}, {3, commit}, {4, describe}, {0, init}, {1, add}, {5, list}, {3, abort}} {
		seq = append(seq, fuzzFrame(step.kind, step.req)...)
	}
	f.Add(seq)
	f.Add(append(append(fuzzFrame(0, init), fuzzFrame(1, add)...), 6, 30, 0))                                        // a timeout abort
	f.Add(append(fuzzFrame(0, init), 6, 255, 0, 7, 0, 0))                                                            // an expiry
	f.Add(append(append([]byte{8, 1, 0}, fuzzFrame(0, init)...), append([]byte{8, 0, 0}, fuzzFrame(0, init)...)...)) // a refused write

	f.Fuzz(func(t *testing.T, data []byte) {
		fx := newFixture(t)
		for len(data) >= 3 {
			kind, version, n := data[0], data[1], int(data[2])
			data = data[3:]
			body := data[:min(n, len(data))]
			data = data[len(body):]
			switch {
			case int(kind)%9 < len(fuzzKinds):
				req := fuzzKinds[int(kind)%9]()
				req.SetVersion(int16(version) % (req.MaxVersion() + 1))
				if req.ReadFrom(body) != nil {
					continue
				}
				resp, wait := fx.c.Handle(context.Background(), req)
				if wait != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp = wait(ctx)
					cancel()
				}
				if resp == nil || resp.Key() != req.Key() {
					t.Fatalf("answer %v to %T", resp, req)
				}
				resp.AppendTo(nil) // the answer must encode at its version
			case int(kind)%9 == 6:
				fx.clock.Add(time.Duration(version) * time.Second)
				fx.c.abortTimedOut()
			case int(kind)%9 == 7:
				fx.clock.Add(time.Duration(version) * time.Hour)
				fx.c.expireTransactionalIDs()
			default:
				// The log refuses writes (the ISR shrank) or takes them again.
				if version%2 == 1 {
					fx.log.setFailure(kerr.NotEnoughReplicas)
				} else {
					fx.log.setFailure(nil)
				}
			}
		}
		fx.log.setFailure(nil)
		settle(t, fx.c)
		checkConsistent(t, fx)
	})
}

// settle waits until no write or marker delivery is in flight.
func settle(t *testing.T, c *Coordinator) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy := false
		c.mu.Lock()
		for _, m := range c.txns {
			busy = busy || m.pending != nil || m.completing || m.state.prepared()
		}
		c.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("transactions still in flight after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// checkConsistent checks the table's invariants and that replaying the log rebuilds it.
func checkConsistent(t *testing.T, fx *fixture) {
	t.Helper()
	mem := snapshot(fx.c)
	for id, s := range mem {
		switch s.state {
		case stateEmpty, stateCompleteCommit, stateCompleteAbort:
			if len(s.partitions) != 0 {
				t.Fatalf("%s is %s with partitions %v", id, s.state, s.partitions)
			}
		case stateOngoing:
			if len(s.partitions) == 0 {
				t.Fatalf("%s is Ongoing with no partitions", id)
			}
		default:
			t.Fatalf("%s settled in %s", id, s.state)
		}
		if s.epoch < 0 {
			t.Fatalf("%s has epoch %d", id, s.epoch)
		}
	}
	c2 := fx.newCoordinator()
	if err := c2.Load(context.Background(), 0, testCoordinatorEpoch+1, fx.log); err != nil {
		t.Fatal(err)
	}
	if replayed := snapshot(c2); !reflect.DeepEqual(replayed, mem) {
		t.Fatalf("replay differs from memory:\n replay %+v\n memory %+v", replayed, mem)
	}
}
