package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/record"
)

// applyRole makes a local replica lead or follow as the metadata says, and starts or
// stops copying it from its leader.
func (b *Broker) applyRole(p *partition.Partition, meta cluster.Partition) {
	if b.holdBack(p, meta) { // repair.go: offline or damaged
		return
	}
	if meta.Leader == b.cfg.NodeID {
		p.BecomeLeader(meta.LeaderEpoch, meta.PartitionEpoch, meta.Replicas, meta.ISR, time.Now())
		b.fetchers.stop(p)
		return
	}
	p.BecomeFollower(meta.Leader, meta.LeaderEpoch, meta.PartitionEpoch, meta.Replicas, meta.ISR)
	if meta.Leader < 0 {
		b.fetchers.stop(p)
		return
	}
	b.fetchers.follow(p, meta.Leader, meta.LeaderEpoch)
}

// alterISR asks the controller for a new ISR (AlterPartition), once at a time per partition.
func (b *Broker) alterISR(p *partition.Partition, isr []int32) {
	tp := topicPartition{p.Topic, p.ID}
	b.isrMu.Lock()
	if b.isrInFlight[tp] {
		b.isrMu.Unlock()
		return
	}
	b.isrInFlight[tp] = true
	b.isrMu.Unlock()
	current, partitionEpoch := p.ISR()
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		defer func() {
			b.isrMu.Lock()
			delete(b.isrInFlight, tp)
			b.isrMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := b.meta.AlterPartition(ctx, p.Topic, p.ID, b.cfg.NodeID, p.LeaderEpoch(), partitionEpoch, isr); err != nil {
			b.log.Warn("changing the ISR failed", "topic", p.Topic, "partition", p.ID, "from", current, "to", isr, "err", err)
			return
		}
		b.log.Info("ISR changed", "topic", p.Topic, "partition", p.ID, "from", current, "to", isr)
	}()
}

// followerFetched records a follower's fetch offset on a leader and asks for its return to
// the ISR once it has caught up.
func (b *Broker) followerFetched(p *partition.Partition, replica int32, offset int64) {
	rejoin, err := p.FollowerFetched(replica, offset, time.Now())
	if err != nil || !rejoin {
		return
	}
	isr, _ := p.ISR()
	b.alterISR(p, append(isr, replica))
}

// watchISR shrinks the ISR of partitions this node leads when followers fall behind for
// longer than replica.lag.time.max.ms.
func (b *Broker) watchISR(ctx context.Context) {
	defer b.bg.Done()
	maxLag := time.Duration(b.brokerConfigInt(b.meta.State(), "replica.lag.time.max.ms")) * time.Millisecond
	everyTick(ctx, max(maxLag/4, 50*time.Millisecond), func() {
		now := time.Now()
		for _, p := range b.localPartitions() {
			lagging := p.Lagging(now, maxLag)
			if len(lagging) == 0 {
				continue
			}
			isr, _ := p.ISR()
			isr = slices.DeleteFunc(isr, func(r int32) bool { return slices.Contains(lagging, r) })
			b.alterISR(p, isr)
		}
	})
}

// replicaFetchers copy the partitions this node follows from their leaders: one
// goroutine per leader node, each fetching all of that leader's partitions in one request.
type replicaFetchers struct {
	b      *Broker
	mu     sync.Mutex
	ctx    context.Context
	client *kgo.Client
	byNode map[int32]*replicaFetcher
}

type replicaFetcher struct {
	leader int32
	mu     sync.Mutex
	parts  map[*partition.Partition]*followState
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// followState is one followed partition: the epoch it follows at and whether its log must
// first be reconciled with the leader's (KIP-101) before fetching.
type followState struct {
	epoch    int32
	truncate bool
	retryAt  time.Time
}

// start gives the fetchers their client; follow calls before it are kept and started.
func (f *replicaFetchers) start(ctx context.Context, client *kgo.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctx, f.client = ctx, client
	for _, rf := range f.byNode {
		f.runLocked(rf)
	}
}

func (f *replicaFetchers) runLocked(rf *replicaFetcher) {
	if f.ctx == nil || rf.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(f.ctx)
	rf.cancel, rf.done = cancel, make(chan struct{})
	go f.run(ctx, rf)
}

// follow makes p copied from leader at epoch (again from a truncation, if the epoch moved).
func (f *replicaFetchers) follow(p *partition.Partition, leader, epoch int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, rf := range f.byNode {
		if id != leader {
			rf.remove(p)
		}
	}
	rf := f.byNode[leader]
	if rf == nil {
		rf = &replicaFetcher{leader: leader, parts: map[*partition.Partition]*followState{}, wake: make(chan struct{}, 1)}
		f.byNode[leader] = rf
	}
	rf.mu.Lock()
	if st := rf.parts[p]; st == nil || st.epoch != epoch {
		rf.parts[p] = &followState{epoch: epoch, truncate: true}
	}
	rf.mu.Unlock()
	select {
	case rf.wake <- struct{}{}:
	default:
	}
	f.runLocked(rf)
}

// stop ends the copying of p.
func (f *replicaFetchers) stop(p *partition.Partition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rf := range f.byNode {
		rf.remove(p)
	}
}

func (rf *replicaFetcher) remove(p *partition.Partition) {
	rf.mu.Lock()
	delete(rf.parts, p)
	rf.mu.Unlock()
}

// close stops every fetcher and waits for them.
func (f *replicaFetchers) close() {
	f.mu.Lock()
	nodes := f.byNode
	f.byNode = map[int32]*replicaFetcher{}
	f.mu.Unlock()
	for _, rf := range nodes {
		if rf.cancel != nil {
			rf.cancel()
			<-rf.done
		}
	}
}

// run fetches from one leader until ctx ends: first reconciles newly followed partitions
// by leader epoch, then long-polls Fetch for all of them.
func (f *replicaFetchers) run(ctx context.Context, rf *replicaFetcher) {
	defer close(rf.done)
	leader := f.client.Broker(int(rf.leader))
	for ctx.Err() == nil {
		rf.mu.Lock()
		var truncate, fetch []*partition.Partition
		now := time.Now()
		for p, st := range rf.parts {
			_, damaged := p.Log().Damaged()
			switch {
			case damaged: // quarantined: nothing is copied until the repair truncates it
			case now.Before(st.retryAt):
			case st.truncate:
				truncate = append(truncate, p)
			default:
				fetch = append(fetch, p)
			}
		}
		rf.mu.Unlock()
		if len(truncate) > 0 {
			f.truncate(ctx, rf, leader, truncate)
			continue
		}
		if len(fetch) == 0 {
			select {
			case <-ctx.Done():
			case <-rf.wake:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		f.fetch(ctx, rf, leader, fetch)
	}
}

// backoff keeps p out of the next requests for a while (its leader answered an error).
func (rf *replicaFetcher) backoff(p *partition.Partition, truncate bool) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if st := rf.parts[p]; st != nil {
		st.retryAt = time.Now().Add(200 * time.Millisecond)
		st.truncate = st.truncate || truncate
	}
}

func (rf *replicaFetcher) truncated(p *partition.Partition) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if st := rf.parts[p]; st != nil {
		st.truncate = false
	}
}

// truncate cuts each partition's log back to where it agrees with the leader's: the end
// of the largest leader epoch both logs hold (KIP-101, KIP-279), never by high watermark.
func (f *replicaFetchers) truncate(ctx context.Context, rf *replicaFetcher, leader *kgo.Broker, parts []*partition.Partition) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = f.b.cfg.NodeID
	for _, group := range topicsOf(parts) {
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = group[0].Topic
		for _, p := range group {
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.ID, p.LeaderEpoch(), p.Log().LatestEpoch()
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	kresp := rf.ask(ctx, leader, req, parts, 5*time.Second, true)
	if kresp == nil {
		return
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	find := partitionFinder(parts)
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			p := find(t.Topic, rp.Partition)
			if p == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				rf.backoff(p, true)
				continue
			}
			l := p.Log()
			cut := l.LogEndOffset()
			if l.LatestEpoch() >= 0 {
				if rp.LeaderEpoch < 0 {
					cut = min(cut, p.HighWatermark()) // the leader knows no epoch of ours
				} else {
					_, ours := l.EndOffsetForEpoch(rp.LeaderEpoch)
					cut = min(cut, rp.EndOffset, ours)
				}
			}
			if cut < l.LogEndOffset() {
				f.b.log.Info("truncating follower log to agree with the leader", "topic", p.Topic, "partition", p.ID,
					"from", l.LogEndOffset(), "to", cut, "leader", rf.leader, "leader_epoch", rp.LeaderEpoch)
				if err := l.Truncate(cut); err != nil {
					f.b.log.Error("follower truncation failed", "topic", p.Topic, "partition", p.ID, "err", err)
					rf.backoff(p, true)
					continue
				}
			}
			rf.truncated(p)
		}
	}
}

// fetch copies what the leader has past each partition's log end.
func (f *replicaFetchers) fetch(ctx context.Context, rf *replicaFetcher, leader *kgo.Broker, parts []*partition.Partition) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = f.b.cfg.NodeID
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 16<<20
	req.SessionID, req.SessionEpoch = 0, -1
	for _, group := range topicsOf(parts) {
		t := kmsg.NewFetchRequestTopic()
		t.Topic = group[0].Topic
		for _, p := range group {
			// The epoch first, then the damage check, then the log end: the report of a
			// damaged replica starts a new leader epoch at the controller, so a fetch that
			// carries that epoch must carry the log end after the repair's truncation.
			epoch := p.LeaderEpoch()
			if _, damaged := p.Log().Damaged(); damaged {
				continue
			}
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.CurrentLeaderEpoch = p.ID, epoch
			fp.FetchOffset, fp.LogStartOffset, fp.PartitionMaxBytes = p.Log().LogEndOffset(), p.Log().LogStartOffset(), 4<<20
			t.Partitions = append(t.Partitions, fp)
		}
		if len(t.Partitions) > 0 {
			req.Topics = append(req.Topics, t)
		}
	}
	if len(req.Topics) == 0 {
		return
	}
	kresp := rf.ask(ctx, leader, req, parts, 10*time.Second, false)
	if kresp == nil {
		return
	}
	resp := kresp.(*kmsg.FetchResponse)
	find := partitionFinder(parts)
	// Every partition's batches are appended first, each starting its fsync, and then the
	// fsyncs are waited for together: one round of overlapping fsyncs per answer, not one
	// after another, before the next fetch tells the leader what is on disk.
	type appended struct {
		p             *partition.Partition
		end, leaderHW int64
	}
	var durable []appended
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			p := find(t.Topic, rp.Partition)
			if p == nil {
				continue
			}
			switch rp.ErrorCode {
			case 0:
			case kerr.OffsetOutOfRange.Code:
				rf.backoff(p, true) // reconcile by epoch again
				continue
			default:
				rf.backoff(p, false)
				continue
			}
			end, err := f.appendFetched(p, rp.RecordBatches)
			if err != nil {
				f.appendFailed(rf, p, err)
				continue
			}
			durable = append(durable, appended{p, end, rp.HighWatermark})
		}
	}
	for _, a := range durable {
		if a.end == 0 {
			a.p.SetFollowerHighWatermark(a.leaderHW)
			continue
		}
		if err := a.p.Log().WaitDurable(ctx, a.end); err != nil {
			if !errors.Is(err, context.Canceled) {
				f.appendFailed(rf, a.p, err)
			}
			continue
		}
		a.p.SetFollowerHighWatermark(a.leaderHW)
	}
}

func (f *replicaFetchers) appendFailed(rf *replicaFetcher, p *partition.Partition, err error) {
	f.b.noteStorageError(p, err)
	f.b.log.Warn("appending replicated batches failed", "topic", p.Topic, "partition", p.ID, "err", err)
	rf.backoff(p, true)
}

// appendFetched appends the whole batches of a fetch answer that lie past the log end and
// returns the end offset to wait for with WaitDurable (0: nothing was appended): the next
// fetch offset must tell the leader only what is on disk.
func (f *replicaFetchers) appendFetched(p *partition.Partition, raw []byte) (int64, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	batches, err := record.Split(raw) // checks every CRC: a follower never stores damaged bytes
	if err != nil {
		return 0, err
	}
	end := p.Log().LogEndOffset()
	start := 0
	size := 0
	for _, b := range batches {
		h, _ := record.ParseHeader(b)
		if h.NextOffset() <= end {
			start += len(b)
			continue
		}
		size += len(b)
	}
	if size == 0 {
		return 0, nil
	}
	res, err := p.Log().AppendReplicatedNoWait(raw[start : start+size])
	if err != nil {
		return 0, err
	}
	return res.LastOffset + 1, nil
}

// topicsOf groups partitions by topic, in the order topics first appear.
func topicsOf(parts []*partition.Partition) [][]*partition.Partition {
	index := map[string]int{}
	var out [][]*partition.Partition
	for _, p := range parts {
		i, ok := index[p.Topic]
		if !ok {
			i = len(out)
			index[p.Topic] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], p)
	}
	return out
}

// ask sends a request to the leader; when it fails, every partition in it backs off
// (and reconciles by epoch again first, when truncate).
func (rf *replicaFetcher) ask(ctx context.Context, leader *kgo.Broker, req kmsg.Request, parts []*partition.Partition, timeout time.Duration, truncate bool) kmsg.Response {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := leader.Request(rctx, req)
	if err != nil {
		for _, p := range parts {
			rf.backoff(p, truncate)
		}
		return nil
	}
	return resp
}

func partitionFinder(parts []*partition.Partition) func(topic string, id int32) *partition.Partition {
	return func(topic string, id int32) *partition.Partition {
		for _, p := range parts {
			if p.Topic == topic && p.ID == id {
				return p
			}
		}
		return nil
	}
}
