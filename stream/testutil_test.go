package stream

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func nowForTest() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// recordingSender acknowledges every record at once with the next offset of its topic.
type recordingSender struct {
	records []*kgo.Record
	next    map[string]int64
}

func (s *recordingSender) send(r *kgo.Record, done func(*kgo.Record, error)) {
	if s.next == nil {
		s.next = map[string]int64{}
	}
	r.Offset = s.next[r.Topic]
	s.next[r.Topic]++
	s.records = append(s.records, r)
	done(r, nil)
}

func testRecord(topic string, p int32, offset int64, key, value string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Offset: offset, Key: []byte(key), Value: []byte(value), Timestamp: nowForTest()}
}
