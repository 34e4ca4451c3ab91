package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// stampSize is the bytes at the front of an E2E record's value that carry its send time
// in nanoseconds since the epoch: the record timestamp itself is only milliseconds.
const stampSize = 8

// minSleep is the shortest wait for a record's due time that the sender sleeps for.
const minSleep = 200 * time.Microsecond

// producers runs Config.Producers clients, each sending its share of the records.
type producers struct {
	cfg     *Config
	clients []*kgo.Client
	stamp   bool // E2E: each value starts with its send time
	value   []byte
	lat     *latencies

	// endTxn is the latency of EndTxn (commit) when the producers are transactional.
	endTxn *latencies
	txns   atomic.Int64

	sent, acked, ackedBytes, failed atomic.Int64
	lastAck                         atomic.Int64 // unix nanos of the latest acknowledgement
	errMu                           sync.Mutex
	firstErr                        error
}

// spans, when not nil, gets the clients' request round trips (E2E).
func newProducers(cfg *Config, stamp bool, spans *clientSpans) (*producers, error) {
	opts, err := cfg.producerOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, spans.producerOpts()...)
	p := &producers{cfg: cfg, stamp: stamp, lat: newLatencies(), endTxn: newLatencies(), value: make([]byte, cfg.RecordSize)}
	// Random bytes, so that compression has honest work to do.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range p.value {
		p.value[i] = byte('a' + rng.IntN(26))
	}
	run := time.Now().UnixNano()
	for i := range cfg.Producers {
		clientOpts := opts
		if cfg.TxnRecords > 0 {
			clientOpts = append(clientOpts[:len(clientOpts):len(clientOpts)], kgo.TransactionalID(fmt.Sprintf("%s-bench-%d-%d", cfg.Topic, run, i)))
		}
		cl, err := cfg.client(clientOpts...)
		if err != nil {
			p.close()
			return nil, err
		}
		p.clients = append(p.clients, cl)
	}
	return p, nil
}

func (p *producers) close() {
	for _, cl := range p.clients {
		cl.Close()
	}
}

// run sends until each producer's share of Records is sent or sendCtx ends (the run's
// duration), then waits for every sent record to be acknowledged or failed, unless ctx
// (the caller's) ends first.
func (p *producers) run(ctx, sendCtx context.Context, start time.Time) {
	var wg sync.WaitGroup
	n := int64(len(p.clients))
	for i, cl := range p.clients {
		share := int64(-1) // unbounded: until ctx ends
		if p.cfg.Records > 0 {
			share = p.cfg.Records / n
			if int64(i) < p.cfg.Records%n {
				share++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.cfg.TxnRecords > 0 {
				if err := cl.BeginTransaction(); err != nil {
					p.fail(err)
					return
				}
			}
			p.send(ctx, sendCtx, cl, share, start, p.cfg.Rate/float64(n))
			// Records already handed over must be accounted for, so not sendCtx.
			cl.Flush(ctx)
			if p.cfg.TxnRecords > 0 {
				p.commit(ctx, cl, false)
			}
		}()
	}
	wg.Wait()
}

// send produces share records (or until ctx ends when share < 0). With a rate, record k is
// due at start + k/rate; latency counts from when it was due, so time spent blocked in the
// client or behind a slow broker is charged to the broker, not forgotten.
func (p *producers) send(ctx, sendCtx context.Context, cl *kgo.Client, share int64, start time.Time, rate float64) {
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := int64(0); share < 0 || k < share; k++ {
		if sendCtx.Err() != nil {
			return
		}
		if p.cfg.TxnRecords > 0 && k > 0 && k%int64(p.cfg.TxnRecords) == 0 && !p.commit(ctx, cl, true) {
			return
		}
		due := time.Now()
		if interval > 0 {
			due = start.Add(time.Duration(k) * interval)
			// Sleep only for gaps worth a timer: at 100k records/s a timer per record would
			// cost the producer more CPU than producing. A record sent a little before it is
			// due counts its latency from when it was sent.
			if wait := time.Until(due); wait > minSleep {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-sendCtx.Done():
					return
				}
			}
			if now := time.Now(); now.Before(due) {
				due = now
			}
		}
		r := &kgo.Record{Value: p.value}
		if p.stamp {
			v := make([]byte, len(p.value))
			copy(v[stampSize:], p.value[stampSize:])
			binary.BigEndian.PutUint64(v, uint64(due.UnixNano()))
			r.Value, r.Timestamp = v, due
		}
		size := int64(len(r.Value))
		p.sent.Add(1)
		// Not sendCtx: a record handed over before the run ended must still be acknowledged.
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			now := time.Now()
			if err != nil {
				p.fail(err)
				return
			}
			p.lat.record(now.Sub(due))
			p.acked.Add(1)
			p.ackedBytes.Add(size)
			p.lastAck.Store(now.UnixNano())
		})
	}
}

// commit ends the producer's transaction once its records are acknowledged, timing the
// EndTxn alone, and begins the next one if again. It reports whether sending may go on.
func (p *producers) commit(ctx context.Context, cl *kgo.Client, again bool) bool {
	if err := cl.Flush(ctx); err != nil {
		p.fail(err)
		return false
	}
	began := time.Now()
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.fail(fmt.Errorf("end transaction: %w", err))
		return false
	}
	p.endTxn.record(time.Since(began))
	p.txns.Add(1)
	if !again {
		return true
	}
	if err := cl.BeginTransaction(); err != nil {
		p.fail(err)
		return false
	}
	return true
}

func (p *producers) fail(err error) {
	p.failed.Add(1)
	p.errMu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.errMu.Unlock()
}

func (p *producers) firstError() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.firstErr == nil {
		return ""
	}
	return p.firstErr.Error()
}
