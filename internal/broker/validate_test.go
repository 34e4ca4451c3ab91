package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/record"
)

// TestProduceRecordErrors (KIP-467, issue 18 item 6.1): a batch with some invalid records is
// still refused whole, but the partition response names each bad record in record_errors
// (batch_index and its message) and sums them up in error_message, with the texts and codes
// of Kafka's LogValidator (validateKey, validateTimestamp, processRecordErrors in
// storage/src/main/java/org/apache/kafka/storage/internals/log/LogValidator.java) and
// ReplicaManager (a RecordValidationException's message becomes error_message).
func TestProduceRecordErrors(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	cl := client(t, b)
	createTopic(t, cl, "keyed", 1, map[string]string{"cleanup.policy": "compact"})
	createTopic(t, cl, "recent", 1, map[string]string{"message.timestamp.difference.max.ms": "60000"})
	createTopic(t, cl, "plain", 1, nil)
	now := time.Now().UnixMilli()
	keyMsg := "Compacted topic cannot accept message without key in topic partition keyed-0"
	build := func(attrs int16, codec record.Codec, recs ...record.Record) []byte {
		for i := range recs {
			recs[i].OffsetDelta = int32(i)
		}
		batch, err := record.Build(record.Header{BaseTimestamp: now, Attributes: attrs, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, codec)
		if err != nil {
			t.Fatal(err)
		}
		return batch
	}
	keyed := func(k string) record.Record { return record.Record{Key: []byte(k), Value: []byte("v")} }
	keyless := record.Record{Value: []byte("v")}
	hourAgo := record.Record{Key: []byte("old"), Value: []byte("v"), TimestampDelta: -3_600_000}

	type recErr struct {
		index int32
		msg   string // a prefix of the record's message
	}
	for _, tc := range []struct {
		name, topic string
		batch       []byte
		code        int16
		message     string // error_message, whole or (ending in "...") a prefix
		records     []recErr
	}{
		{"two keyless of five to a compacted topic", "keyed",
			build(0, record.CodecNone, keyed("a"), keyless, keyed("c"), keyless, keyed("e")),
			kerr.InvalidRecord.Code,
			"One or more records have been rejected due to 2 record errors in total, and only showing the first three errors at most: " +
				"[RecordError(batchIndex=1, message='" + keyMsg + "'), RecordError(batchIndex=3, message='" + keyMsg + "')]",
			[]recErr{{1, keyMsg}, {3, keyMsg}}},
		{"four keyless in a compressed batch: the message shows three", "keyed",
			build(0, record.CodecZstd, keyless, keyless, keyed("c"), keyless, keyless),
			kerr.InvalidRecord.Code,
			"One or more records have been rejected due to 4 record errors in total, and only showing the first three errors at most: " +
				"[RecordError(batchIndex=0, message='" + keyMsg + "'), RecordError(batchIndex=1, message='" + keyMsg + "'), RecordError(batchIndex=3, message='" + keyMsg + "')]",
			[]recErr{{0, keyMsg}, {1, keyMsg}, {3, keyMsg}, {4, keyMsg}}},
		{"a timestamp outside message.timestamp.difference.max.ms", "recent",
			build(0, record.CodecNone, keyed("a"), hourAgo, keyed("c")),
			kerr.InvalidTimestamp.Code,
			"One or more records have been rejected due to invalid timestamp",
			[]recErr{{1, fmt.Sprintf("Timestamp %d of message with offset 1 is out of range. The timestamp should be within [", now-3_600_000)}}},
		{"a batch the producer marked LogAppendTime", "plain",
			build(0x08, record.CodecNone, keyed("a"), keyed("b")),
			kerr.InvalidTimestamp.Code,
			"One or more records have been rejected due to invalid timestamp",
			[]recErr{{0, "Invalid timestamp type in message DefaultRecord(offset=0, "}, {1, "Invalid timestamp type in message DefaultRecord(offset=1, "}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := produceRaw(t, cl, tc.topic, tc.batch)
			if r.ErrorCode != tc.code || r.BaseOffset != -1 {
				t.Fatalf("error %v base offset %d, want %v and -1", kerr.ErrorForCode(r.ErrorCode), r.BaseOffset, kerr.ErrorForCode(tc.code))
			}
			if r.ErrorMessage == nil || *r.ErrorMessage != tc.message {
				t.Fatalf("error_message %v,\nwant %q", strPtr(r.ErrorMessage), tc.message)
			}
			if len(r.ErrorRecords) != len(tc.records) {
				t.Fatalf("record_errors %+v, want %d", r.ErrorRecords, len(tc.records))
			}
			for i, want := range tc.records {
				got := r.ErrorRecords[i]
				if got.RelativeOffset != want.index || got.ErrorMessage == nil || !strings.HasPrefix(*got.ErrorMessage, want.msg) {
					t.Fatalf("record_errors[%d] = %d %v, want %d %q...", i, got.RelativeOffset, strPtr(got.ErrorMessage), want.index, want.msg)
				}
			}
		})
	}
	// Nothing of a refused batch was stored: each topic's next good batch starts at 0.
	for _, topic := range []string{"keyed", "recent", "plain"} {
		if r := produceRaw(t, cl, topic, build(0, record.CodecNone, keyed("a"), keyed("b"))); r.ErrorCode != 0 || r.BaseOffset != 0 || len(r.ErrorRecords) != 0 {
			t.Fatalf("%s: good batch after the refused ones: %v at %d", topic, kerr.ErrorForCode(r.ErrorCode), r.BaseOffset)
		}
	}
}

func strPtr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *s)
}

// TestFranzGoSeesRecordErrorsBatch: what a real client makes of it. franz-go (v1.19, kgo's
// sink.go) does not read record_errors: it fails every record of the refused batch with the
// partition's error, INVALID_RECORD (not retriable), and produces the other partitions'
// batches. The test pins that the keyed records of the same ProduceSync call to another
// topic are stored, and the refused batch's records all carry INVALID_RECORD.
func TestFranzGoSeesRecordErrorsBatch(t *testing.T) {
	b, _ := startBroker(t, t.TempDir())
	admin := client(t, b)
	createTopic(t, admin, "keyed", 1, map[string]string{"cleanup.policy": "compact"})
	createTopic(t, admin, "plain", 1, nil)
	cl := client(t, b, kgo.ProducerLinger(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx,
		&kgo.Record{Topic: "keyed", Key: []byte("a"), Value: []byte("1")},
		&kgo.Record{Topic: "keyed", Value: []byte("no key")},
		&kgo.Record{Topic: "plain", Value: []byte("elsewhere")},
	)
	for _, r := range res {
		switch r.Record.Topic {
		case "keyed":
			if !errors.Is(r.Err, kerr.InvalidRecord) {
				t.Fatalf("record %q to the compacted topic: %v, want INVALID_RECORD", r.Record.Value, r.Err)
			}
		default:
			if r.Err != nil {
				t.Fatalf("record to %s: %v", r.Record.Topic, r.Err)
			}
		}
	}
}
