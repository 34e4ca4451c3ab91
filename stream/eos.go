package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exactly-once, as Kafka Streams' exactly_once_v2 does it (StreamsProducer, TaskManager):
// every commit is one transaction that holds the outputs, the changelog records and the
// input offsets (TxnOffsetCommit through the group, so a zombie member of an older
// generation is refused). The local state is written after the transaction commits, with
// the changelog offsets it reflects, so Pebble never holds writes of an aborted
// transaction; a crash between the commit and the state write leaves a checkpoint behind
// the changelog's committed data, and the restore replays that tail read_committed. The
// transaction is driven by franz-go's GroupTransactSession, which aborts a transaction that
// a rebalance overtook and rewinds the consumer to the committed offsets.

// errFenced marks a producer another holder of its transactional id has fenced: nothing
// more may be written under it, and the instance rejoins with a new one.
var errFenced = errors.New("producer fenced")

// minTransactionTimeout is Kafka Streams' transaction.timeout.ms under exactly-once
// (StreamsConfig#PRODUCER_EOS_OVERRIDES): a crashed instance's open transaction holds back
// read_committed readers of its topics until the coordinator aborts it, so it is short.
const minTransactionTimeout = 10 * time.Second

// transactionOpts are the client options of an exactly-once instance.
func transactionOpts(cfg Config, db *stateDB) ([]kgo.Opt, error) {
	name := cfg.InstanceID
	if name == "" {
		var err error
		if name, err = db.processID(); err != nil {
			return nil, err
		}
	}
	timeout := minTransactionTimeout
	if t := 3 * cfg.CommitInterval; t > timeout {
		timeout = t
	}
	return []kgo.Opt{
		kgo.TransactionalID(cfg.AppID + "-" + name),
		kgo.TransactionTimeout(timeout),
		// Inputs include repartition topics this application writes in transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, nil
}

// processIDKey holds the random name of an instance without an InstanceID. Kafka Streams
// keeps its process id in the state directory (kafka-streams-process-metadata) for the same
// reason: a restart on the same state takes the same transactional id, which fences and
// aborts the transaction the crashed process left open instead of waiting for its timeout.
var processIDKey = []byte("m\x00process-id")

func (s *stateDB) processID() (string, error) {
	v, err := getCopy(s.db, processIDKey)
	if err != nil {
		return "", fmt.Errorf("read process id: %w", err)
	}
	if v != nil {
		return string(v), nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("process id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if err := s.db.Set(processIDKey, []byte(id), pebble.Sync); err != nil {
		return "", fmt.Errorf("write process id: %w", err)
	}
	return id, nil
}

// isFenced reports errors after which the producer may not write again: another producer
// took the transactional id (Kafka's ProducerFencedException, and InvalidProducerEpoch
// for a request of an older epoch).
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

func endError(what string, err error) error {
	if isFenced(err) {
		return fmt.Errorf("%s: %w: %w", what, errFenced, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// doomTransaction is the session's revoke and lost callback: the session aborts the open
// transaction at its End, and the loop must throw away the tasks' work since the last
// commit. It runs under the session's lock, so it does not wait for a.mu.
func (a *App) doomTransaction(parts map[string][]int32) {
	a.assignMu.Lock()
	defer a.assignMu.Unlock()
	a.txnDoomed = true
	for topic, ps := range parts {
		if sub, ok := a.topicSub[topic]; ok {
			for _, p := range ps {
				delete(a.assigned, taskID{sub, p})
			}
		}
	}
}

// abortIfDoomed aborts the open transaction after a revoke or a loss, and reports whether
// it did. The caller holds a.mu.
func (a *App) abortIfDoomed(ctx context.Context) (bool, error) {
	a.assignMu.Lock()
	doomed := a.txnDoomed
	a.assignMu.Unlock()
	if !doomed {
		return false, nil
	}
	if _, err := a.sess.End(ctx, kgo.TryAbort); err != nil {
		return true, endError("abort transaction", err)
	}
	return true, a.afterAbort()
}

// afterAbort drops every task's work since the last commit: their batches and caches
// (closing the tasks), and the offsets they processed (the session rewound the consumer to
// the committed ones). The tasks still assigned start again from the state the last commit
// left in Pebble, which the aborted transaction never touched. Then a new transaction
// begins.
func (a *App) afterAbort() error {
	a.closeTasks(nil)
	a.assignMu.Lock()
	for id := range a.assigned {
		a.pending[id] = true
	}
	a.txnDoomed = false
	a.assignMu.Unlock()
	a.dirty = false
	a.sent.Store(0)
	a.lastCommit = time.Now()
	if err := a.sess.Begin(); err != nil {
		return endError("begin transaction", err)
	}
	return nil
}

// commitTransaction is commit under ExactlyOnce: caches flushed, the transaction (outputs,
// changelog records, input offsets) committed, then each task's state batch with the
// changelog offsets it reflects. A crash before the transaction commits loses nothing the
// transaction held; one after it, before the state write, leaves the checkpoints behind
// and the restore reads the committed tail.
func (a *App) commitTransaction(ctx context.Context) error {
	a.lastCommit = time.Now()
	defer a.tcfg.metrics.observeCommit(a.lastCommit)
	for _, t := range a.tasks {
		if err := t.flush(); err != nil {
			return err
		}
	}
	if !a.dirty {
		for _, t := range a.tasks {
			if !t.batch.Empty() {
				a.dirty = true
				break
			}
		}
	}
	a.assignMu.Lock()
	doomed := a.txnDoomed
	a.assignMu.Unlock()
	if !a.dirty && !doomed && a.sent.Load() == 0 {
		return nil
	}
	if err := a.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	for _, t := range a.tasks {
		t.mu.Lock()
		sendErr := t.sendErr
		t.mu.Unlock()
		if sendErr != nil {
			if _, err := a.sess.End(ctx, kgo.TryAbort); err != nil {
				return endError(fmt.Sprintf("task %s: send: %v; abort transaction", t.id, sendErr), err)
			}
			return endError(fmt.Sprintf("task %s: send", t.id), sendErr)
		}
	}
	a.sent.Store(0)
	committed, err := a.sess.End(ctx, kgo.TryCommit)
	if err != nil {
		return endError("commit transaction", err)
	}
	if !committed {
		a.cfg.Logger.Info("stream: transaction aborted by a rebalance; the tasks start again from their last commit", "app", a.cfg.AppID)
		return a.afterAbort()
	}
	if err := a.writeTaskStates(); err != nil {
		return err
	}
	a.dirty = false
	if err := a.sess.Begin(); err != nil {
		return endError("begin transaction", err)
	}
	return nil
}
