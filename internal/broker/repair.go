package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/partition"
)

// Quarantine and repair of damaged replicas (issue 8). When this node finds its copy of a
// partition damaged below its log end (the scrubber, the CRC check before serving a
// follower, recovery at Open finding records missing), it
//  1. stops serving the damaged range (readIntact) and stops copying into the log,
//  2. reports the replica to the controller until the report lands: the replica leaves the
//     ISR, loses leadership to another ISR member and is marked recovering, so no election
//     picks it (cluster.ReportDamagedReplica),
//  3. once the metadata names another leader, truncates its log to the first damaged batch
//     and lets the replica fetcher copy the rest from the leader; the leader adds it back to
//     the ISR when it has caught up, which clears the recovering mark.
// A replica that is the partition's only ISR member is kept by the controller: it goes on
// leading, refusing the damaged range, and reports again until another replica can take over.
//
// A failed disk (journal.ErrStorage with a failed log) takes the replica offline on this
// node until the broker restarts, as Kafka does for a failed log directory: produce and
// fetch answer KAFKA_STORAGE_ERROR while the metadata still names it leader, its fetcher
// stops, and it is reported so leadership and ISR membership move to the other replicas.
//
// Read errors: one is counted and answered with KAFKA_STORAGE_ERROR, but readErrorLimit of
// them within readErrorWindow take the replica offline like a failed write. A disk that
// keeps failing reads would otherwise keep leading while its followers, unable to fetch,
// drop out of the ISR one by one, until the partition could take no acks=all write and no
// other replica could lead.
//
// A leader whose appends keep failing with ENOSPC for longer than diskFullGrace is reported
// as disk-full: it hands leadership over but stays a follower, since its log is intact (the
// partial write was undone), and rejoins the ISR when it can copy again.

// repairRetry is the longest wait between reports to the controller; diskFullGrace is how
// long appends must keep failing for lack of space before leadership moves (variables so
// tests can shorten them).
var (
	repairRetry   = 2 * time.Second
	diskFullGrace = 5 * time.Second

	readErrorLimit  = 3
	readErrorWindow = 10 * time.Second
)

// repairState is the broker's side of quarantine and repair.
type repairState struct {
	repairs       *prometheus.CounterVec
	storageErrors *prometheus.CounterVec
	offline       *prometheus.GaugeVec

	mu       sync.Mutex
	damaged  map[topicPartition]int64       // replicas quarantined and not yet truncated: first damaged offset
	failed   map[topicPartition]error       // replicas offline after a storage failure
	diskFull map[topicPartition]time.Time   // leaders whose appends fail with ENOSPC: since when
	reads    map[topicPartition][]time.Time // recent read errors, within readErrorWindow
}

func newRepairState(reg prometheus.Registerer, b *Broker) *repairState {
	r := &repairState{damaged: map[topicPartition]int64{}, failed: map[topicPartition]error{}, diskFull: map[topicPartition]time.Time{},
		reads: map[topicPartition][]time.Time{},
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_replica_repairs_total",
			Help: "Damaged replicas truncated to their last good batch to be copied again from the leader."}, []string{"topic", "partition"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_storage_errors_total",
			Help: "I/O errors from the disk on appends, fsyncs and reads, by partition."}, []string{"topic", "partition"}),
		offline: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strand_log_offline",
			Help: "1 for a partition taken offline on this node after a storage failure (until restart)."}, []string{"topic", "partition"}),
	}
	recovering := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strand_replicas_recovering",
		Help: "Local replicas damaged or recovering: quarantined, or out of the ISR until they have copied back what was damaged."},
		func() float64 { return float64(b.recoveringReplicas()) })
	reg.MustRegister(r.repairs, r.storageErrors, r.offline, recovering)
	return r
}

// recoveringReplicas counts the local replicas quarantined or marked recovering.
func (b *Broker) recoveringReplicas() int {
	if b.meta == nil {
		return 0
	}
	s := b.meta.State()
	n := 0
	for tp := range b.localPartitions() {
		b.repair.mu.Lock()
		_, quarantined := b.repair.damaged[tp]
		b.repair.mu.Unlock()
		if meta, ok := metaPartition(s, tp); quarantined || (ok && slices.Contains(meta.Recovering, b.cfg.NodeID)) {
			n++
		}
	}
	return n
}

// metaPartition is a partition's metadata.
func metaPartition(s *cluster.State, tp topicPartition) (cluster.Partition, bool) {
	t, ok := s.Topics[tp.topic]
	if !ok || tp.id < 0 || int(tp.id) >= len(t.Partitions) {
		return cluster.Partition{}, false
	}
	return t.Partitions[tp.id], true
}

// isOffline reports a local replica taken offline after a storage failure.
func (b *Broker) isOffline(tp topicPartition) bool {
	b.repair.mu.Lock()
	defer b.repair.mu.Unlock()
	_, ok := b.repair.failed[tp]
	return ok
}

// holdBack is applyRole's guard: it reports whether p must neither lead nor follow as the
// metadata says — offline after a storage failure, or damaged while the metadata still
// makes it the leader of a partition that another in-sync replica could lead — and then
// makes it serve nothing. It also quarantines a damaged log it finds (recovery at Open).
func (b *Broker) holdBack(p *partition.Partition, meta cluster.Partition) bool {
	tp := topicPartition{p.Topic, p.ID}
	if b.isOffline(tp) {
		b.serveNothing(p, meta)
		return true
	}
	from, damaged := p.Log().Damaged()
	if !damaged {
		return false
	}
	b.quarantine(p, from, "damaged log")
	if meta.Leader == b.cfg.NodeID && len(meta.ISR) > 1 {
		b.log.Warn("not leading a damaged replica; waiting for the controller to elect another", "topic", p.Topic, "partition", p.ID,
			"damaged_from", from, "leader_epoch", meta.LeaderEpoch)
		b.serveNothing(p, meta)
		return true
	}
	return false
}

// serveNothing makes p neither lead nor copy from a leader.
func (b *Broker) serveNothing(p *partition.Partition, meta cluster.Partition) {
	p.BecomeFollower(-1, meta.LeaderEpoch, meta.PartitionEpoch, meta.Replicas, meta.ISR)
	b.fetchers.stop(p)
}

// quarantine starts the repair of p's damaged log from offset from, unless it is running.
func (b *Broker) quarantine(p *partition.Partition, from int64, why string) {
	tp := topicPartition{p.Topic, p.ID}
	b.repair.mu.Lock()
	if _, running := b.repair.damaged[tp]; running || b.repair.failed[tp] != nil {
		if running && from < b.repair.damaged[tp] {
			b.repair.damaged[tp] = from
		}
		b.repair.mu.Unlock()
		return
	}
	b.repair.damaged[tp] = from
	b.repair.mu.Unlock()
	b.log.Error("quarantining damaged replica: it leaves the ISR, gives up leadership and is copied again from the leader",
		"topic", p.Topic, "partition", p.ID, "damaged_from", from, "found_by", why)
	b.bg.Add(1)
	go b.repairReplica(b.runCtx, p)
}

// repairReplica reports p damaged, waits until another replica leads, truncates p to its
// first damaged batch and hands it back to the replica fetcher.
func (b *Broker) repairReplica(ctx context.Context, p *partition.Partition) {
	defer b.bg.Done()
	tp := topicPartition{p.Topic, p.ID}
	defer func() {
		b.repair.mu.Lock()
		delete(b.repair.damaged, tp)
		b.repair.mu.Unlock()
	}()
	kept := false
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, repairRetry) {
		from, ok := p.Log().Damaged()
		if !ok {
			return // truncated by the follower's reconciliation meanwhile
		}
		removed, ok := b.report(ctx, p, cluster.DamagedData, from)
		if !ok {
			return
		}
		if !removed {
			// The only in-sync copy: it keeps leading and refuses the damaged range; report
			// again once another replica has rejoined the ISR and could take over.
			if !kept {
				b.log.Warn("damaged replica kept: it is the only in-sync replica; the damaged range is refused", "topic", p.Topic,
					"partition", p.ID, "damaged_from", from)
				kept = true
			}
			b.waitOtherInSync(ctx, tp)
			continue
		}
		meta, ok := b.waitLeaderElsewhere(ctx, tp, backoff)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			continue
		}
		// Follow first, under the role lock as watchMetadata does: a local role still
		// leading could otherwise append a batch of the old epoch right after the cut.
		b.reconcileM.Lock()
		b.applyRole(p, meta)
		from, ok = p.Log().Damaged()
		var err error
		if ok {
			err = p.Log().Truncate(from)
		}
		b.reconcileM.Unlock()
		if !ok {
			return
		}
		if err != nil {
			b.log.Error("truncating a damaged replica failed", "topic", p.Topic, "partition", p.ID, "to", from, "err", err)
			b.noteStorageError(p, err)
			if b.isOffline(tp) {
				return // a failed disk: offline until restart, reported as such
			}
			continue
		}
		b.repair.repairs.WithLabelValues(p.Topic, strconv.Itoa(int(p.ID))).Inc()
		b.log.Warn("damaged replica truncated to its last good batch; copying the rest from the leader", "topic", p.Topic, "partition", p.ID,
			"truncated_to", p.Log().LogEndOffset(), "damaged_from", from, "leader", meta.Leader, "leader_epoch", meta.LeaderEpoch)
		return
	}
}

// report tells the controller that p is damaged or failed, retrying until it lands, and
// says whether the replica left the ISR (false: kept as the only in-sync copy). ok is false
// when ctx ended or the partition no longer exists.
func (b *Broker) report(ctx context.Context, p *partition.Partition, reason cluster.DamageReason, from int64) (removed, ok bool) {
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, repairRetry) {
		out, err := b.meta.ReportDamagedReplica(ctx, p.Topic, p.ID, b.cfg.NodeID, reason, from)
		switch {
		case err == nil && out.Removed:
			b.log.Info("controller took the replica out of the ISR", "topic", p.Topic, "partition", p.ID, "reason", reason,
				"from", from, "leader", out.Partition.Leader, "isr", out.Partition.ISR)
			return true, true
		case err == nil:
			return false, true
		case errors.Is(err, cluster.ErrUnknownTopic), errors.Is(err, cluster.ErrIneligibleReplica):
			return false, false
		}
		b.log.Warn("reporting a damaged replica failed; retrying", "topic", p.Topic, "partition", p.ID, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return false, false
}

// waitOtherInSync waits until the metadata shows another replica in tp's ISR.
func (b *Broker) waitOtherInSync(ctx context.Context, tp topicPartition) {
	for {
		ch := b.meta.Changes()
		meta, ok := metaPartition(b.meta.State(), tp)
		if !ok || slices.ContainsFunc(meta.ISR, func(r int32) bool { return r != b.cfg.NodeID }) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// waitLeaderElsewhere waits up to d for metadata that names another leader (or none) for
// tp and takes this replica out of the ISR, and returns it.
func (b *Broker) waitLeaderElsewhere(ctx context.Context, tp topicPartition, d time.Duration) (cluster.Partition, bool) {
	timeout := time.After(d)
	for {
		ch := b.meta.Changes()
		meta, ok := metaPartition(b.meta.State(), tp)
		if ok && meta.Leader != b.cfg.NodeID && !slices.Contains(meta.ISR, b.cfg.NodeID) {
			return meta, true
		}
		select {
		case <-ctx.Done():
			return meta, false
		case <-timeout:
			return meta, false
		case <-ch:
		}
	}
}

// noteStorageError looks at the error of an operation on p's log: a failed log takes the
// replica offline; appends failing for lack of space move leadership once they persist;
// a read error is counted. A nil error ends a disk-full streak.
func (b *Broker) noteStorageError(p *partition.Partition, err error) {
	tp := topicPartition{p.Topic, p.ID}
	if err == nil {
		b.repair.mu.Lock()
		delete(b.repair.diskFull, tp)
		b.repair.mu.Unlock()
		return
	}
	if !errors.Is(err, journal.ErrStorage) {
		return
	}
	b.repair.storageErrors.WithLabelValues(p.Topic, strconv.Itoa(int(p.ID))).Inc()
	if cause := p.Log().Failure(); cause != nil {
		b.takeOffline(p, cause)
		return
	}
	if !errors.Is(err, journal.ErrDiskFull) {
		if b.readsKeepFailing(tp) {
			b.takeOffline(p, fmt.Errorf("%d read errors within %s, the last: %w", readErrorLimit, readErrorWindow, err))
		}
		return
	}
	if !p.IsLeader() {
		return
	}
	now := time.Now()
	b.repair.mu.Lock()
	since, seen := b.repair.diskFull[tp]
	if !seen {
		b.repair.diskFull[tp] = now
	}
	persistent := seen && now.Sub(since) >= diskFullGrace
	if persistent {
		delete(b.repair.diskFull, tp)
	}
	b.repair.mu.Unlock()
	if persistent {
		b.log.Error("appends keep failing for lack of disk space; handing leadership over", "topic", p.Topic, "partition", p.ID,
			"since", since, "err", err)
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			if removed, _ := b.report(b.runCtx, p, cluster.DiskFull, -1); !removed {
				b.log.Warn("disk full on the only in-sync replica: it keeps leading", "topic", p.Topic, "partition", p.ID)
			}
		}()
	}
}

// readsKeepFailing notes a read error and reports whether readErrorLimit of them fell
// within readErrorWindow.
func (b *Broker) readsKeepFailing(tp topicPartition) bool {
	now := time.Now()
	b.repair.mu.Lock()
	defer b.repair.mu.Unlock()
	recent := slices.DeleteFunc(b.repair.reads[tp], func(at time.Time) bool { return now.Sub(at) > readErrorWindow })
	recent = append(recent, now)
	b.repair.reads[tp] = recent
	return len(recent) >= readErrorLimit
}

// takeOffline stops serving p on this node after its log failed, once.
func (b *Broker) takeOffline(p *partition.Partition, cause error) {
	tp := topicPartition{p.Topic, p.ID}
	b.repair.mu.Lock()
	_, already := b.repair.failed[tp]
	if !already {
		b.repair.failed[tp] = cause
	}
	b.repair.mu.Unlock()
	if already {
		return
	}
	b.repair.offline.WithLabelValues(p.Topic, strconv.Itoa(int(p.ID))).Set(1)
	b.log.Error("partition offline on this node after a storage failure; it stays offline until restart", "topic", p.Topic,
		"partition", p.ID, "log_end", p.Log().LogEndOffset(), "err", cause)
	if meta, ok := metaPartition(b.meta.State(), tp); ok {
		b.serveNothing(p, meta)
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		if removed, _ := b.report(b.runCtx, p, cluster.StorageFailed, -1); !removed {
			b.log.Error("failed replica is the only in-sync one: the partition is unavailable until this node restarts", "topic", p.Topic, "partition", p.ID)
		}
	}()
}

// watchStorage notices logs that failed where no request saw it (an fsync under
// fsync=interval, a replicated append) and takes them offline.
func (b *Broker) watchStorage(ctx context.Context) {
	defer b.bg.Done()
	everyTick(ctx, 250*time.Millisecond, func() {
		for tp, p := range b.localPartitions() {
			if cause := p.Log().Failure(); cause != nil && !b.isOffline(tp) {
				b.repair.storageErrors.WithLabelValues(p.Topic, strconv.Itoa(int(p.ID))).Inc()
				b.takeOffline(p, cause)
			}
		}
	})
}

// storageRefusal is the error answered for a replica offline on this node while the
// metadata still names it leader (once it names another, clients get NOT_LEADER and go
// there).
func (b *Broker) storageRefusal(tp topicPartition) error {
	b.repair.mu.Lock()
	cause := b.repair.failed[tp]
	b.repair.mu.Unlock()
	return fmt.Errorf("%w: partition offline on this node: %v", journal.ErrStorage, cause)
}
