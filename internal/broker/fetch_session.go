package broker

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions (KIP-227): a client that fetches many partitions sends only what changed
// (positions that moved, partitions added or forgotten) and the broker answers only
// partitions with news: records, an error, or a moved high watermark or log start offset.

// maxFetchSessions is max.incremental.fetch.session.cache.slots; the least recently used
// session is evicted beyond it.
const maxFetchSessions = 1000

// fetchItem is one partition to read.
type fetchItem struct {
	topic              string
	partition          int32
	fetchOffset        int64
	maxBytes           int32
	currentLeaderEpoch int32
}

type sessionPartition struct {
	fetchItem
	sentHighWatermark, sentLastStable, sentLogStart int64
	sent                                            bool
}

type fetchSession struct {
	id       int32
	epoch    int32 // the epoch the next request must carry
	parts    []*sessionPartition
	index    map[topicPartition]*sessionPartition
	lastUsed time.Time
}

type fetchSessions struct {
	mu   sync.Mutex
	byID map[int32]*fetchSession
}

func itemsOf(req *kmsg.FetchRequest) []fetchItem {
	var items []fetchItem
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			items = append(items, fetchItem{topic: t.Topic, partition: p.Partition, fetchOffset: p.FetchOffset,
				maxBytes: p.PartitionMaxBytes, currentLeaderEpoch: p.CurrentLeaderEpoch})
		}
	}
	return items
}

// resolve applies a request to the session cache. It returns the partitions to read, the
// session (nil for a sessionless fetch), whether the answer is incremental, or an error code.
func (s *fetchSessions) resolve(req *kmsg.FetchRequest) (items []fetchItem, sess *fetchSession, incremental bool, code int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[int32]*fetchSession{}
	}
	switch {
	case req.SessionID == 0 && req.SessionEpoch == -1:
		return itemsOf(req), nil, false, 0
	case req.SessionEpoch == 0:
		// A full fetch that opens a session; a non-zero id names an old session to close.
		delete(s.byID, req.SessionID)
		sess = &fetchSession{id: s.newID(), epoch: 1, index: map[topicPartition]*sessionPartition{}, lastUsed: time.Now()}
		for _, it := range itemsOf(req) {
			sess.upsert(it)
		}
		s.evictLocked()
		s.byID[sess.id] = sess
		return itemsOf(req), sess, false, 0
	case req.SessionID == 0:
		return nil, nil, false, kerr.InvalidFetchSessionEpoch.Code
	case req.SessionEpoch == -1:
		delete(s.byID, req.SessionID)
		return itemsOf(req), nil, false, 0
	}
	sess, ok := s.byID[req.SessionID]
	if !ok {
		return nil, nil, false, kerr.FetchSessionIDNotFound.Code
	}
	if req.SessionEpoch != sess.epoch {
		return nil, nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	sess.epoch++
	sess.lastUsed = time.Now()
	for _, it := range itemsOf(req) {
		sess.upsert(it)
	}
	for _, f := range req.ForgottenTopics {
		for _, p := range f.Partitions {
			sess.forget(topicPartition{f.Topic, p})
		}
	}
	items = make([]fetchItem, len(sess.parts))
	for i, p := range sess.parts {
		items[i] = p.fetchItem
	}
	return items, sess, true, 0
}

func (s *fetchSessions) newID() int32 {
	for {
		id := rand.Int32()
		if _, taken := s.byID[id]; id != 0 && !taken {
			return id
		}
	}
}

func (s *fetchSessions) evictLocked() {
	for len(s.byID) >= maxFetchSessions {
		var oldest *fetchSession
		for _, sess := range s.byID {
			if oldest == nil || sess.lastUsed.Before(oldest.lastUsed) {
				oldest = sess
			}
		}
		delete(s.byID, oldest.id)
	}
}

func (f *fetchSession) upsert(it fetchItem) {
	tp := topicPartition{it.topic, it.partition}
	if p, ok := f.index[tp]; ok {
		p.fetchItem = it
		return
	}
	p := &sessionPartition{fetchItem: it}
	f.index[tp] = p
	f.parts = append(f.parts, p)
}

func (f *fetchSession) forget(tp topicPartition) {
	if _, ok := f.index[tp]; !ok {
		return
	}
	delete(f.index, tp)
	for i, p := range f.parts {
		if p.topic == tp.topic && p.partition == tp.id {
			f.parts = append(f.parts[:i:i], f.parts[i+1:]...)
			break
		}
	}
}

// trim records what a response tells the client and, for an incremental answer, drops
// the partitions that have nothing new.
func (s *fetchSessions) trim(sess *fetchSession, body *fetchBody, incremental bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body.sessionID = sess.id
	topics := body.topics[:0]
	for _, t := range body.topics {
		parts := t.partitions[:0]
		for _, p := range t.partitions {
			sp := sess.index[topicPartition{t.name, p.id}]
			news := p.errorCode != 0 || p.size > 0 || sp == nil || !sp.sent ||
				sp.sentHighWatermark != p.highWatermark || sp.sentLastStable != p.lastStable || sp.sentLogStart != p.logStart
			if sp != nil {
				sp.sent, sp.sentHighWatermark, sp.sentLastStable, sp.sentLogStart = true, p.highWatermark, p.lastStable, p.logStart
			}
			if news || !incremental {
				parts = append(parts, p)
			}
		}
		if len(parts) > 0 {
			t.partitions = parts
			topics = append(topics, t)
		}
	}
	body.topics = topics
}
