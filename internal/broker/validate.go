package broker

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// Per-record validation (KIP-467). Kafka's LogValidator.validateRecord checks each record of
// a produced batch: a compacted topic's records must have keys (INVALID_RECORD), and under
// message.timestamp.type=CreateTime a record's timestamp must lie within
// message.timestamp.difference.max.ms of the broker's clock, and (whatever the topic's type)
// a producer may not mark its batch LogAppendTime (both INVALID_TIMESTAMP). It still rejects the whole batch
// (processRecordErrors throws RecordValidationException), but names the offending records in
// the partition response's record_errors (batch_index, batch_index_error_message) and sums
// them up in error_message, so a client can fail only those records and retry the rest.
// The texts below are Kafka's, word for word where a client or a user might match on them.

// recordRules are the per-record checks a partition's topic asks for.
type recordRules struct {
	topic          string
	partition      int32
	compacted      bool
	createTime     bool  // message.timestamp.type=CreateTime
	maxTimestampMs int64 // message.timestamp.difference.max.ms
}

// needsRecords reports whether the rules can refuse a record of a batch with header h, so
// that only then are its records decoded.
func (r recordRules) needsRecords(h record.Header) bool {
	return r.compacted || h.TimestampType() == 1 || (r.createTime && r.maxTimestampMs < math.MaxInt64)
}

// errRecordValidation is a batch refused for some of its records; the response's
// record_errors say which.
var errRecordValidation = errors.New("record validation failed")

// validateRecords checks every record of batch against the rules as Kafka's LogValidator
// does and, when some fail, fills rp's error code, error_message and record_errors and
// returns an error wrapping errRecordValidation.
func validateRecords(batch []byte, h record.Header, rules recordRules, now time.Time, rp *kmsg.ProduceResponseTopicPartition) error {
	recs, err := record.Records(batch)
	if err != nil {
		rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
		return err
	}
	nowMs := now.UnixMilli()
	var errs []kmsg.ProduceResponseTopicPartitionErrorRecord
	badTimestamp := false
	for i, r := range recs {
		var msg string
		ts := h.BaseTimestamp + r.TimestampDelta
		switch {
		case rules.compacted && r.Key == nil:
			msg = fmt.Sprintf("Compacted topic cannot accept message without key in topic partition %s-%d", rules.topic, rules.partition)
		case rules.createTime && ts != -1 && absDiff(ts, nowMs) > rules.maxTimestampMs:
			msg = fmt.Sprintf("Timestamp %d of message with offset %d is out of range. The timestamp should be within [%d, %d]",
				ts, h.BaseOffset+int64(r.OffsetDelta), satAdd(nowMs, -rules.maxTimestampMs), satAdd(nowMs, rules.maxTimestampMs))
			badTimestamp = true
		case h.TimestampType() == 1:
			msg = fmt.Sprintf("Invalid timestamp type in message DefaultRecord(offset=%d, timestamp=%d, key=%d bytes, value=%d bytes). Producer should not set timestamp type to LogAppendTime.",
				h.BaseOffset+int64(r.OffsetDelta), ts, len(r.Key), len(r.Value))
			badTimestamp = true
		default:
			continue
		}
		e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
		e.RelativeOffset, e.ErrorMessage = int32(i), kmsg.StringPtr(msg)
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return nil
	}
	rp.ErrorRecords = errs
	var summary string
	if badTimestamp {
		rp.ErrorCode = kerr.InvalidTimestamp.Code
		summary = "One or more records have been rejected due to invalid timestamp"
	} else {
		rp.ErrorCode = kerr.InvalidRecord.Code
		shown := make([]string, 0, 3)
		for _, e := range errs[:min(len(errs), 3)] {
			shown = append(shown, fmt.Sprintf("RecordError(batchIndex=%d, message='%s')", e.RelativeOffset, *e.ErrorMessage))
		}
		summary = fmt.Sprintf("One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: [%s]",
			len(errs), strings.Join(shown, ", "))
	}
	rp.ErrorMessage = kmsg.StringPtr(summary)
	return fmt.Errorf("%w: %s", errRecordValidation, summary)
}

// absDiff is |a-b|, saturating instead of overflowing.
func absDiff(a, b int64) int64 {
	if a >= b {
		return satAdd(a, -b)
	}
	return satAdd(b, -a)
}

// satAdd is a+b clamped to the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}
