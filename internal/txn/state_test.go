package txn

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestStateValueBytes checks the value bytes against TransactionLogValue version 0 as
// Kafka lays it out (TransactionLogValue.json): version, ProducerId, ProducerEpoch,
// TransactionTimeoutMs, TransactionStatus, TransactionPartitions (null for Empty, a
// list otherwise, empty once complete), TransactionLastUpdateTimestampMs,
// TransactionStartTimestampMs.
func TestStateValueBytes(t *testing.T) {
	be := binary.BigEndian
	head := func(status int8) []byte {
		b := be.AppendUint16(nil, 0)
		b = be.AppendUint64(b, 1000)
		b = be.AppendUint16(b, 3)
		b = be.AppendUint32(b, 60000)
		return append(b, byte(status))
	}
	tail := func(b []byte, start int64) []byte {
		b = be.AppendUint64(b, 1700000000123)
		return be.AppendUint64(b, uint64(start))
	}
	str := func(b []byte, s string) []byte { return append(be.AppendUint16(b, uint16(len(s))), s...) }

	base := txnState{producerID: 1000, epoch: 3, timeoutMs: 60000, updateMs: 1700000000123, startMs: 1700000000000,
		partitions: map[TopicPartition]struct{}{{"b", 2}: {}, {"a", 1}: {}, {"a", 0}: {}}}

	ongoing := base
	ongoing.state = stateOngoing
	want := be.AppendUint32(head(1), 2) // two topics
	want = str(want, "a")
	want = be.AppendUint32(want, 2)
	want = be.AppendUint32(want, 0)
	want = be.AppendUint32(want, 1)
	want = str(want, "b")
	want = be.AppendUint32(want, 1)
	want = be.AppendUint32(want, 2)
	want = tail(want, 1700000000000)
	if got := stateValue(ongoing); !bytes.Equal(got, want) {
		t.Fatalf("Ongoing\n got %x\nwant %x", got, want)
	}

	complete := base
	complete.state, complete.partitions = stateCompleteCommit, nil
	want = tail(be.AppendUint32(head(4), 0), 1700000000000)
	if got := stateValue(complete); !bytes.Equal(got, want) {
		t.Fatalf("CompleteCommit\n got %x\nwant %x", got, want)
	}

	empty := base // partitions are not written for Empty, whatever memory holds
	empty.state, empty.startMs = stateEmpty, -1
	want = tail(be.AppendUint32(head(0), 0xffffffff), -1)
	if got := stateValue(empty); !bytes.Equal(got, want) {
		t.Fatalf("Empty\n got %x\nwant %x", got, want)
	}

	if got, want := stateKey("tx"), str(be.AppendUint16(nil, 0), "tx"); !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}
}
