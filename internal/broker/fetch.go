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
// wakes it, or max_wait_ms passes. No polling.
//
// Fetch sessions (KIP-227): this node declines to create sessions, which the protocol
// allows (the answer's session id is 0 and clients send full requests), and rejects
// requests naming a session it never issued.
func (b *Broker) handleFetch(ctx context.Context, req *kmsg.FetchRequest) kafka.Response {
	if req.Version >= 7 {
		code := int16(0)
		switch {
		case req.SessionID != 0:
			code = kerr.FetchSessionIDNotFound.Code
		case req.SessionEpoch != 0 && req.SessionEpoch != -1:
			code = kerr.InvalidFetchSessionEpoch.Code
		}
		if code != 0 {
			return &fetchBody{version: req.Version, errorCode: code}
		}
	}
	wake := b.fetchWakeups(req)
	body := b.readFetch(req)
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if body.bytes >= int64(req.MinBytes) || body.failed || maxWait <= 0 || body.bytes > 0 && req.MinBytes <= 1 {
		return body
	}
	return &pendingFetch{b: b, req: req, wake: wake, deadline: time.Now().Add(maxWait)}
}

// fetchWakeups are the channels that close when a requested partition changes.
func (b *Broker) fetchWakeups(req *kmsg.FetchRequest) []<-chan struct{} {
	var out []<-chan struct{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if part, ok := b.partition(t.Topic, p.Partition); ok {
				out = append(out, part.Log().Changed())
			}
		}
	}
	return out
}

// readFetch reads every requested partition, within the per-partition and total limits.
func (b *Broker) readFetch(req *kmsg.FetchRequest) *fetchBody {
	body := &fetchBody{version: req.Version}
	s := b.meta.State()
	remaining := int64(req.MaxBytes)
	if req.Version < 3 || remaining <= 0 {
		remaining = 1<<31 - 1
	}
	for _, t := range req.Topics {
		ft := fetchTopic{name: t.Topic}
		topic, known := s.Topics[t.Topic]
		for _, p := range t.Partitions {
			fp := fetchPartition{id: p.Partition, highWatermark: -1, lastStable: -1, logStart: -1}
			part, local := b.partition(t.Topic, p.Partition)
			switch {
			case !known || p.Partition < 0 || int(p.Partition) >= len(topic.Partitions):
				fp.errorCode = kerr.UnknownTopicOrPartition.Code
			case !local:
				fp.errorCode = kerr.NotLeaderForPartition.Code
			case p.CurrentLeaderEpoch >= 0 && p.CurrentLeaderEpoch < part.LeaderEpoch():
				fp.errorCode = kerr.FencedLeaderEpoch.Code
			case p.CurrentLeaderEpoch > part.LeaderEpoch():
				fp.errorCode = kerr.UnknownLeaderEpoch.Code
			default:
				l := part.Log()
				hw := part.HighWatermark()
				fp.highWatermark, fp.lastStable, fp.logStart = hw, hw, l.LogStartOffset()
				res, err := l.Read(p.FetchOffset, min(int64(p.PartitionMaxBytes), remaining), hw, body.bytes == 0)
				if err != nil {
					fp.errorCode = errorCode(err)
					if !errors.Is(err, journal.ErrOffsetOutOfRange) {
						b.log.Warn("fetch read failed", "topic", t.Topic, "partition", p.Partition, "offset", p.FetchOffset, "err", err)
					}
				} else {
					fp.ranges, fp.size = res.Ranges, res.Size
					body.bytes += res.Size
					remaining -= res.Size
					if res.Size > 0 {
						b.metrics.bytesOut.WithLabelValues(t.Topic).Add(float64(res.Size))
						b.metrics.recordsOut.WithLabelValues(t.Topic).Add(float64(res.NextOffset - res.FirstOffset))
					}
				}
			}
			if fp.errorCode != 0 {
				body.failed = true
			}
			ft.partitions = append(ft.partitions, fp)
		}
		body.topics = append(body.topics, ft)
	}
	return body
}

type pendingFetch struct {
	b        *Broker
	req      *kmsg.FetchRequest
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
		if chosen <= 1 {
			return p.b.readFetch(p.req)
		}
		p.wake = p.b.fetchWakeups(p.req)
		body := p.b.readFetch(p.req)
		if body.bytes >= int64(p.req.MinBytes) || body.failed || !time.Now().Before(p.deadline) {
			return body
		}
	}
}
