package broker

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/kafka"
)

// handleFetch reads what is there now; when that is less than min_bytes it answers with a
// Pending that sleeps until an append (or durability advance) on one of the partitions
// wakes it, or max_wait_ms passes. No polling. From v7 the request may belong to a fetch
// session (fetch_session.go).
func (b *Broker) handleFetch(ctx context.Context, req *kmsg.FetchRequest) kafka.Response {
	plan := &fetchPlan{req: req}
	if req.Version >= 7 {
		var code int16
		plan.items, plan.session, plan.incremental, code = b.sessions.resolve(req)
		if code != 0 {
			return &fetchBody{version: req.Version, errorCode: code}
		}
	} else {
		plan.items = itemsOf(req)
	}
	wake := b.fetchWakeups(plan)
	body := b.readFetch(plan)
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if body.bytes >= int64(req.MinBytes) || body.failed || maxWait <= 0 {
		return b.finishFetch(plan, body)
	}
	return &pendingFetch{b: b, plan: plan, wake: wake, deadline: time.Now().Add(maxWait)}
}

// fetchPlan is one Fetch request resolved against its session.
type fetchPlan struct {
	req         *kmsg.FetchRequest
	items       []fetchItem
	session     *fetchSession
	incremental bool
}

// readCommitted reports a consumer fetch with isolation_level READ_COMMITTED: it reads
// only below the last stable offset, and learns the aborted transactions of what it reads.
func (p *fetchPlan) readCommitted() bool {
	return p.req.ReplicaID < 0 && p.req.IsolationLevel == 1
}

func (b *Broker) finishFetch(plan *fetchPlan, body *fetchBody) *fetchBody {
	for _, at := range body.committedAt {
		b.metrics.latency.observeFetchDelay(time.Since(at))
	}
	if plan.session != nil {
		b.sessions.trim(plan.session, body, plan.incremental)
	}
	return body
}

// fetchWakeups are the channels that close when a requested partition changes in a way
// the fetcher can see: a follower reads up to the log end, so every append wakes it; a
// consumer reads only below the high watermark, so it wakes when that moves (the leader
// advances it as each fsync or follower fetch completes) or the role changes, and not
// for the append before it, which it could not read yet. A read_committed consumer reads
// below the last stable offset, which also moves when a transaction marker is appended:
// while an open transaction holds it below the high watermark, appends wake it too.
func (b *Broker) fetchWakeups(plan *fetchPlan) []<-chan struct{} {
	follower, committed := plan.req.ReplicaID >= 0, plan.readCommitted()
	var out []<-chan struct{}
	for _, it := range plan.items {
		if part, ok := b.partition(it.topic, it.partition); ok {
			// Channels first, state after: a change between the two closes a channel taken.
			appended, moved := part.Log().Changed(), part.Changed()
			if follower || committed && part.LastStableOffset() < part.HighWatermark() {
				out = append(out, appended)
			}
			out = append(out, moved)
		}
	}
	return out
}

// readFetch reads every planned partition, within the per-partition and total limits.
func (b *Broker) readFetch(plan *fetchPlan) *fetchBody {
	req := plan.req
	body := &fetchBody{version: req.Version, sent: b.metrics.fetchSent}
	s := b.meta.State()
	remaining := int64(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = 1<<31 - 1
	}
	topicIndex := map[string]int{}
	for _, it := range plan.items {
		ti, ok := topicIndex[it.topic]
		if !ok {
			ti = len(body.topics)
			topicIndex[it.topic] = ti
			body.topics = append(body.topics, fetchTopic{name: it.topic})
		}
		fp := fetchPartition{id: it.partition, highWatermark: -1, lastStable: -1, logStart: -1}
		topic, known := s.Topics[it.topic]
		part, local := b.partition(it.topic, it.partition)
		switch {
		case !known || it.partition < 0 || int(it.partition) >= len(topic.Partitions):
			fp.errorCode = kerr.UnknownTopicOrPartition.Code
		case local && b.isOffline(topicPartition{it.topic, it.partition}) && topic.Partitions[it.partition].Leader == b.cfg.NodeID:
			fp.errorCode = kerr.KafkaStorageError.Code
		case !local || !part.IsLeader():
			fp.errorCode = kerr.NotLeaderForPartition.Code
		case it.currentLeaderEpoch >= 0 && it.currentLeaderEpoch < part.LeaderEpoch():
			fp.errorCode = kerr.FencedLeaderEpoch.Code
		case it.currentLeaderEpoch > part.LeaderEpoch():
			fp.errorCode = kerr.UnknownLeaderEpoch.Code
		default:
			l := part.Log()
			limit := int64(-1)
			if req.ReplicaID >= 0 {
				// A follower: its fetch offset says what it holds; it copies up to the log
				// end, consumers only up to the high watermark.
				b.followerFetched(part, req.ReplicaID, it.fetchOffset)
				limit = l.LogEndOffset()
			}
			hw := part.HighWatermark()
			lastStable := min(hw, part.LastStableOffset()) // never above the mark this answer reports
			if limit < 0 {
				limit = hw
				if plan.readCommitted() {
					limit = lastStable
				}
			}
			fp.highWatermark, fp.lastStable, fp.logStart = hw, lastStable, l.LogStartOffset()
			res, err := b.readIntact(l, it, req.ReplicaID, min(int64(it.maxBytes), remaining), limit, body.bytes == 0)
			if err != nil {
				fp.errorCode = errorCode(err)
				b.noteStorageError(part, err)
				if !errors.Is(err, journal.ErrOffsetOutOfRange) {
					b.log.Warn("fetch read failed", "topic", it.topic, "partition", it.partition, "offset", it.fetchOffset, "err", err)
				}
			} else {
				fp.ranges, fp.size = res.Ranges, res.Size
				if plan.readCommitted() && res.Size > 0 {
					// Kafka's collectAbortedTransactions: every transaction with records in
					// what is returned whose marker is at or after the fetch offset.
					fp.aborted = l.AbortedTransactions(it.fetchOffset, res.NextOffset)
				}
				body.bytes += res.Size
				remaining -= res.Size
				if res.Size > 0 {
					if req.ReplicaID < 0 {
						if at, ok := part.CommittedAt(it.fetchOffset); ok {
							body.committedAt = append(body.committedAt, at)
						}
					}
					b.metrics.bytesOut.WithLabelValues(it.topic).Add(float64(res.Size))
					b.metrics.recordsOut.WithLabelValues(it.topic).Add(float64(res.NextOffset - res.FirstOffset))
				}
			}
		}
		if fp.errorCode != 0 {
			body.failed = true
		}
		body.topics[ti].partitions = append(body.topics[ti].partitions, fp)
	}
	return body
}

type pendingFetch struct {
	b        *Broker
	plan     *fetchPlan
	wake     []<-chan struct{}
	deadline time.Time
}

// Wait sleeps until a requested partition changes, then reads again, until min_bytes is
// reached or the deadline passes.
func (p *pendingFetch) Wait(ctx context.Context) kafka.Response {
	timer := time.NewTimer(time.Until(p.deadline))
	defer timer.Stop()
	cases := make([]reflect.SelectCase, 0, len(p.wake)+2)
	for {
		cases = cases[:0]
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		for _, ch := range p.wake {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		if chosen == 1 {
			return nil // the connection is gone: no answer, and no follower fetch offset recorded
		}
		if chosen == 0 {
			return p.b.finishFetch(p.plan, p.b.readFetch(p.plan))
		}
		p.wake = p.b.fetchWakeups(p.plan)
		body := p.b.readFetch(p.plan)
		if body.bytes >= int64(p.plan.req.MinBytes) || body.failed || !time.Now().Before(p.deadline) {
			return p.b.finishFetch(p.plan, body)
		}
	}
}
