// Package partition owns one local replica of a partition: its journal, its role (leader
// or follower) at a leader epoch, and its high watermark, the offset below which records
// are committed and visible to consumers.
//
// As leader it tracks every follower's log end offset from the offsets they fetch at, and
// the high watermark is the smallest durable end offset over the in-sync replicas (DESIGN
// D6): a record below it is on every ISR member's disk, so it survives the loss of any of
// them but one. As follower it learns the high watermark from its leader.
//
// It never speaks the wire protocol and never decides leadership or ISR membership: the
// cluster metadata does, and the broker applies it here.
package partition

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

// Errors callers branch on.
var (
	ErrNotLeader = errors.New("not the leader of this partition")
	// ErrNotEnoughReplicas: the ISR shrank below min.insync.replicas after the append; the
	// record may still be committed later, but the producer cannot be told it is.
	ErrNotEnoughReplicas = errors.New("in-sync replicas fell below min.insync.replicas")
)

// Partition is one local replica.
type Partition struct {
	Topic   string
	ID      int32
	TopicID [16]byte // the topic's id when the broker opened it (zero: unknown)
	self    int32
	log     *journal.Log
	epoch   atomic.Int32

	// roles is held shared by appends as leader, from the role check through the write, and
	// exclusively by BecomeFollower: once that returns, no append of the old leadership is
	// still in flight, so a log truncated after it (repair of a damaged replica, issue 8)
	// cannot get a stray batch of the old epoch. It is apart from mu so that readers of the
	// high watermark do not wait for writes.
	roles sync.RWMutex

	mu             sync.Mutex
	leader         int32 // -1: no leader (offline)
	partitionEpoch int32
	replicas, isr  []int32
	followers      map[int32]*follower // as leader: every other replica
	highWatermark  int64               // as leader: never moves back during a leadership
	commits        commitLog           // as leader: when the high watermark passed recent offsets
	changed        chan struct{}       // closed when the high watermark or the role changes
}

// follower is what a leader knows of one follower.
type follower struct {
	logEnd     int64     // the offset it last fetched at: everything below is on its disk
	caughtUpAt time.Time // last time its log end reached the leader's
}

// Open opens (or creates) the replica's log in dir. self is this node's id; the replica
// starts as the only member of its ISR and leader, as a single node is, until the broker
// applies the metadata with BecomeLeader or BecomeFollower.
func Open(topic string, id int32, self int32, dir string, cfg journal.Config, leaderEpoch int32) (*Partition, error) {
	p := &Partition{Topic: topic, ID: id, self: self, leader: self, replicas: []int32{self}, isr: []int32{self},
		followers: map[int32]*follower{}, changed: make(chan struct{})}
	p.commits.reset(0)
	hook := cfg.Synced
	cfg.Synced = func(took time.Duration) {
		if hook != nil {
			hook(took)
		}
		p.synced()
	}
	l, err := journal.Open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", topic, id, err)
	}
	p.mu.Lock()
	p.log = l // under mu: the syncer's hook may already run
	p.mu.Unlock()
	p.epoch.Store(leaderEpoch)
	return p, nil
}

// Dir is the name of a partition's directory under the data dir, as Kafka names it.
func Dir(topic string, id int32) string { return topic + "-" + strconv.Itoa(int(id)) }

// Log is the replica's journal.
func (p *Partition) Log() *journal.Log { return p.log }

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.epoch.Load() }

// Leader is the current leader's node id, -1 when there is none.
func (p *Partition) Leader() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader
}

// IsLeader reports whether this replica leads the partition.
func (p *Partition) IsLeader() bool { return p.Leader() == p.self }

// ISR is the in-sync replica set this replica last applied, and its partition epoch.
func (p *Partition) ISR() ([]int32, int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.isr), p.partitionEpoch
}

// ReplicaCounts is the size of the ISR and of the replica set.
func (p *Partition) ReplicaCounts() (isr, replicas int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.isr), len(p.replicas)
}

// BecomeLeader applies metadata that makes this replica the leader at leaderEpoch with the
// given replicas and ISR. Followers start as not yet heard from.
func (p *Partition) BecomeLeader(leaderEpoch, partitionEpoch int32, replicas, isr []int32, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wasLeader := p.leader == p.self && p.epoch.Load() == leaderEpoch
	p.leader, p.partitionEpoch = p.self, partitionEpoch
	p.replicas, p.isr = slices.Clone(replicas), slices.Clone(isr)
	if !wasLeader {
		p.epoch.Store(leaderEpoch)
		p.followers = map[int32]*follower{}
		p.commits.reset(p.highWatermark)
		// A new leader's high watermark starts where it knew it to be; followers'
		// fetches move it on.
	}
	for _, r := range replicas {
		if r != p.self && p.followers[r] == nil {
			p.followers[r] = &follower{logEnd: -1, caughtUpAt: now}
		}
	}
	for r := range p.followers {
		if !slices.Contains(replicas, r) {
			delete(p.followers, r)
		}
	}
	p.advanceLocked()
	p.notifyLocked()
}

// BecomeFollower applies metadata that makes another node (or nobody, -1) the leader.
func (p *Partition) BecomeFollower(leader, leaderEpoch, partitionEpoch int32, replicas, isr []int32) {
	p.roles.Lock()
	defer p.roles.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leader, p.partitionEpoch = leader, partitionEpoch
	p.replicas, p.isr = slices.Clone(replicas), slices.Clone(isr)
	p.epoch.Store(leaderEpoch)
	p.followers = map[int32]*follower{}
	p.commits = commitLog{}
	p.highWatermark = min(p.highWatermark, p.log.LogEndOffset())
	p.notifyLocked()
}

// HighWatermark is the end of what consumers may read.
func (p *Partition) HighWatermark() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader == p.self {
		p.advanceLocked()
	}
	return p.highWatermark
}

// LastStableOffset is, on the leader, the end of what read_committed consumers may read:
// the high watermark, or the first offset of the oldest open transaction when that is lower
// (Kafka's Partition.lastStableOffset). It moves when the high watermark does and when a
// transaction marker is appended, which ends a transaction without moving the high
// watermark: a read_committed waiter watches the log's appends too while the two differ.
//
// Kafka keeps a transaction unstable until its marker is below the high watermark; here it
// is stable once its marker is in the leader's log. The outcome a consumer then sees is the
// coordinator's decision, which is durable before any marker is written, and an ABORT
// marker's entry is in the aborted-transaction index from its append on.
func (p *Partition) LastStableOffset() int64 {
	return min(p.HighWatermark(), p.log.FirstUnstableOffset())
}

// advanceLocked moves a leader's high watermark to the smallest durable log end over the
// ISR. Under fsync=always the leader's own part is its fsynced end: no consumer reads
// what a crash of every replica could take back.
func (p *Partition) advanceLocked() {
	hw := p.log.DurableOffset()
	for _, r := range p.isr {
		if r == p.self {
			continue
		}
		f := p.followers[r]
		if f == nil || f.logEnd < 0 {
			return // an ISR member not heard from in this leadership holds the mark
		}
		hw = min(hw, f.logEnd)
	}
	if hw > p.highWatermark {
		p.highWatermark = hw
		p.commits.add(hw, time.Now())
		p.notifyLocked()
	}
}

// SetFollowerHighWatermark records the high watermark a follower learned from its leader.
func (p *Partition) SetFollowerHighWatermark(leaderHW int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader == p.self {
		return
	}
	hw := min(leaderHW, p.log.LogEndOffset())
	if hw != p.highWatermark {
		p.highWatermark = hw
		p.notifyLocked()
	}
}

// FollowerFetched records, as leader, that follower id fetched at offset: everything below
// it is on the follower's disk. It reports whether the follower has caught up while out of
// the ISR, so the caller can ask the controller to add it back.
func (p *Partition) FollowerFetched(id int32, offset int64, now time.Time) (rejoin bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.self {
		return false, ErrNotLeader
	}
	f := p.followers[id]
	if f == nil {
		return false, fmt.Errorf("node %d is not a replica of %s-%d", id, p.Topic, p.ID)
	}
	f.logEnd = offset
	if offset >= p.log.LogEndOffset() {
		f.caughtUpAt = now
	}
	p.advanceLocked()
	return !slices.Contains(p.isr, id) && offset >= p.highWatermark && offset >= p.epochStartLocked(), nil
}

// epochStartLocked is where the current leader epoch's records begin: a follower must hold
// records of this epoch before it can join the ISR (KIP-101 makes it consistent then).
func (p *Partition) epochStartLocked() int64 {
	for _, e := range slices.Backward(p.log.Epochs()) {
		if e.Epoch == p.epoch.Load() {
			return e.StartOffset
		}
	}
	return p.log.LogEndOffset()
}

// Lagging lists, as leader, the ISR followers whose log end has not reached the leader's
// for longer than maxLag (replica.lag.time.max.ms): the ISR should shrink without them.
func (p *Partition) Lagging(now time.Time, maxLag time.Duration) []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.self {
		return nil
	}
	var out []int32
	for _, r := range p.isr {
		if f := p.followers[r]; f != nil && now.Sub(f.caughtUpAt) > maxLag {
			out = append(out, r)
		}
	}
	return out
}

// Append appends a producer's batches as leader and returns without waiting; follow with
// WaitCommitted. minISR is min.insync.replicas, checked when acksAll. It holds roles shared
// through the write (which does not wait for fsync): see Partition.roles.
func (p *Partition) Append(batches []byte, logAppendTime bool, acksAll bool, minISR int) (journal.AppendResult, error) {
	prod, err := record.SplitProduced(batches)
	if err != nil {
		return journal.AppendResult{}, err
	}
	return p.AppendProduced(prod, logAppendTime, acksAll, minISR, journal.Verification{})
}

// AppendProduced is Append for batches the caller has walked and checked with
// record.SplitProduced, with what the broker's KIP-890 verification of a transaction's
// first batch left (journal.Verification).
func (p *Partition) AppendProduced(prod record.Produced, logAppendTime bool, acksAll bool, minISR int, verification journal.Verification) (journal.AppendResult, error) {
	p.roles.RLock()
	defer p.roles.RUnlock()
	p.mu.Lock()
	leader, isr := p.leader, len(p.isr)
	p.mu.Unlock()
	switch {
	case leader != p.self:
		return journal.AppendResult{}, ErrNotLeader
	case acksAll && isr < minISR:
		return journal.AppendResult{}, fmt.Errorf("%w: %d in sync, %d required", errNotEnoughReplicasBefore, isr, minISR)
	}
	res, err := p.log.AppendProduced(prod, journal.AppendOptions{LeaderEpoch: p.epoch.Load(), LogAppendTime: logAppendTime, Verification: verification})
	if err == nil && !p.log.SyncsEachAppend() {
		p.synced() // durable at once under fsync=interval|never: the mark may move now
	}
	return res, err
}

// errNotEnoughReplicasBefore: too few in-sync replicas to accept an acks=all write.
var errNotEnoughReplicasBefore = errors.New("not enough in-sync replicas")

// IsNotEnoughReplicas reports the refusal of an acks=all append for lack of ISR members.
func IsNotEnoughReplicas(err error) bool { return errors.Is(err, errNotEnoughReplicasBefore) }

// WaitCommitted returns once every offset below end is durable on this leader and, when
// acksAll, below the high watermark: on the disk of every in-sync replica.
func (p *Partition) WaitCommitted(ctx context.Context, end int64, acksAll bool, minISR int) error {
	if err := p.log.WaitDurable(ctx, end); err != nil {
		return err
	}
	if !acksAll {
		return nil
	}
	for {
		p.mu.Lock()
		ch, leader := p.changed, p.leader
		if leader == p.self {
			p.advanceLocked()
		}
		hw, isr := p.highWatermark, len(p.isr)
		p.mu.Unlock()
		switch {
		case leader != p.self:
			return ErrNotLeader
		case hw >= end && isr < minISR:
			return ErrNotEnoughReplicas
		case hw >= end:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Changed returns a channel closed at the next change of the high watermark or role.
func (p *Partition) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

func (p *Partition) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Close closes the replica's log.
func (p *Partition) Close() error {
	p.mu.Lock()
	p.notifyLocked()
	p.mu.Unlock()
	return p.log.Close()
}

// AppendMarker writes, as leader, the marker m that commits or aborts its producer's
// transaction (WriteTxnMarkers) and returns without waiting; follow with WaitCommitted,
// acksAll, as Kafka appends markers with required acks -1, which also refuses the append
// while the ISR is below minISR (min.insync.replicas). The journal refuses a stale producer
// or coordinator epoch; transactionVersion is the request's (2: KIP-890 part 2).
func (p *Partition) AppendMarker(m record.EndTxnMarker, transactionVersion int8, minISR int) (journal.AppendResult, error) {
	p.roles.RLock()
	defer p.roles.RUnlock()
	p.mu.Lock()
	leader, isr := p.leader, len(p.isr)
	p.mu.Unlock()
	switch {
	case leader != p.self:
		return journal.AppendResult{}, ErrNotLeader
	case isr < minISR:
		return journal.AppendResult{}, fmt.Errorf("%w: %d in sync, %d required", errNotEnoughReplicasBefore, isr, minISR)
	}
	res, err := p.log.AppendMarker(m, transactionVersion, journal.AppendOptions{LeaderEpoch: p.epoch.Load()})
	if err == nil && !p.log.SyncsEachAppend() {
		p.synced()
	}
	return res, err
}
