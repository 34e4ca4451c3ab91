package broker

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/group"
	"github.com/strand-data/strand/internal/kafka"
	"github.com/strand-data/strand/internal/partition"
	"github.com/strand-data/strand/internal/record"
)

// markerTimeout bounds the wait for a marker's commit; the request has no timeout of its
// own, and the coordinator retries a partition that answers REQUEST_TIMED_OUT.
const markerTimeout = 30 * time.Second

// pendingMarker is one partition's marker waiting to be committed.
type pendingMarker struct {
	part       *partition.Partition
	resp       *kmsg.WriteTxnMarkersResponseMarkerTopicPartition
	end        int64
	minISR     int
	producerID int64
	commit     bool
}

// handleWriteTxnMarkers writes the markers the transaction coordinator sends to end a
// transaction in each of its partitions, as Kafka's KafkaApis.handleWriteTxnMarkersRequest
// does: each partition must be led here; the journal refuses a stale producer epoch
// (INVALID_PRODUCER_EPOCH) or coordinator epoch (TRANSACTION_COORDINATOR_FENCED); an
// accepted marker is answered once committed, acks=all as Kafka appends markers with
// required acks -1 (so min.insync.replicas holds: NOT_ENOUGH_REPLICAS, which the
// coordinator retries). Once a marker in a __consumer_offsets partition is committed, the
// group coordinator makes the transaction's offsets visible or drops them
// (GroupCoordinator.scheduleHandleTxnCompletion).
func (b *Broker) handleWriteTxnMarkers(req *kmsg.WriteTxnMarkersRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	s := b.meta.State()
	var waits []pendingMarker
	resp.Markers = make([]kmsg.WriteTxnMarkersResponseMarker, len(req.Markers))
	for mi, m := range req.Markers {
		rm := &resp.Markers[mi]
		*rm = kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		rm.Topics = make([]kmsg.WriteTxnMarkersResponseMarkerTopic, len(m.Topics))
		for ti, t := range m.Topics {
			rt := &rm.Topics[ti]
			*rt = kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(t.Partitions))
			topic, known := s.Topics[t.Topic]
			minISR := int(s.TopicConfigInt(t.Topic, "min.insync.replicas"))
			for pi, id := range t.Partitions {
				rp := &rt.Partitions[pi]
				*rp = kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = id
				part, local := b.partition(t.Topic, id)
				switch {
				case !known || id < 0 || int(id) >= len(topic.Partitions):
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case local && b.isOffline(topicPartition{t.Topic, id}) && topic.Partitions[id].Leader == b.cfg.NodeID:
					rp.ErrorCode = errorCode(b.storageRefusal(topicPartition{t.Topic, id}))
				case !local || !part.IsLeader():
					rp.ErrorCode = kerr.NotLeaderForPartition.Code
				default:
					marker := record.EndTxnMarker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch, Commit: m.Committed}
					res, err := part.AppendMarker(marker, m.TransactionVersion, minISR)
					b.noteStorageError(part, err)
					if err != nil {
						rp.ErrorCode = errorCode(err)
						b.log.Debug("transaction marker refused", "topic", t.Topic, "partition", id, "producer", m.ProducerID, "err", err)
						continue
					}
					waits = append(waits, pendingMarker{part: part, resp: rp, end: res.LastOffset + 1, minISR: minISR, producerID: m.ProducerID, commit: m.Committed})
				}
			}
		}
	}
	if len(waits) == 0 {
		return resp
	}
	return pendingMarkers{b: b, resp: resp, waits: waits}
}

type pendingMarkers struct {
	b     *Broker
	resp  *kmsg.WriteTxnMarkersResponse
	waits []pendingMarker
}

// Wait waits for every marker's commit together, as pendingProduce does for appends.
func (p pendingMarkers) Wait(ctx context.Context) kafka.Response {
	ctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range p.waits {
		wg.Add(1)
		go func(w *pendingMarker) {
			defer wg.Done()
			if err := w.part.WaitCommitted(ctx, w.end, true, w.minISR); err != nil {
				w.resp.ErrorCode = errorCode(err)
				return
			}
			if w.part.Topic == group.OffsetsTopic {
				p.b.groups.CompleteTransaction(w.part.ID, w.producerID, w.commit)
			}
		}(&p.waits[i])
	}
	wg.Wait()
	return p.resp
}
