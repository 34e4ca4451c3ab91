package txn

import (
	"maps"
	"slices"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a transaction's state, numbered as Kafka numbers them in the
// TransactionStatus field of __transaction_state values.
type state int8

const (
	stateEmpty             state = 0
	stateOngoing           state = 1
	statePrepareCommit     state = 2
	statePrepareAbort      state = 3
	stateCompleteCommit    state = 4
	stateCompleteAbort     state = 5
	stateDead              state = 6
	statePrepareEpochFence state = 7
)

// String is the state's name as Kafka's TransactionState.name spells it, which is what
// DescribeTransactions and ListTransactions carry and what ListTransactions filters by.
func (s state) String() string { return kmsg.TransactionState(s).String() }

// parseState reads a state name from a ListTransactions filter; Kafka matches names
// exactly (TransactionState.fromName).
func parseState(name string) (state, bool) {
	for i, n := range kmsg.TransactionStateStrings() {
		if n == name {
			return state(i), true
		}
	}
	return 0, false
}

// prepared reports whether markers are being written (PrepareCommit or PrepareAbort).
func (s state) prepared() bool { return s == statePrepareCommit || s == statePrepareAbort }

// expirable are the states in which an idle transactional id may be forgotten
// (Kafka's TransactionState.isExpirationAllowed).
func (s state) expirable() bool {
	return s == stateEmpty || s == stateCompleteCommit || s == stateCompleteAbort
}

const (
	noProducerID    int64 = -1
	noProducerEpoch int16 = -1
)

// epochExhausted is Kafka's TransactionMetadata.isEpochExhausted: the last epoch is kept
// free so that a fencing bump (which adds one) can never overflow.
func epochExhausted(epoch int16) bool { return epoch >= 1<<15-2 }

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func compareTopicPartitions(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// txnState is what one __transaction_state value holds, plus the two fields Kafka keeps
// only in memory (lastEpoch, previousProducerID) for KIP-360 retries. A transition builds
// the next txnState from the current one and installs it only once it is written.
type txnState struct {
	producerID         int64
	previousProducerID int64
	epoch              int16
	lastEpoch          int16
	timeoutMs          int32
	state              state
	partitions         map[TopicPartition]struct{}
	startMs            int64 // -1 while no transaction has started
	updateMs           int64
}

func (s txnState) clone() txnState {
	s.partitions = maps.Clone(s.partitions)
	if s.partitions == nil {
		s.partitions = map[TopicPartition]struct{}{}
	}
	return s
}

// sortedPartitions lists the transaction's partitions in a stable order, for the records
// and the answers.
func (s txnState) sortedPartitions() []TopicPartition {
	out := slices.Collect(maps.Keys(s.partitions))
	slices.SortFunc(out, compareTopicPartitions)
	return out
}

// txnMeta is one transactional id as the coordinator holds it: its committed state and,
// while a write is in flight, the state that write will install (Kafka's pendingState).
type txnMeta struct {
	id        string
	partition int32 // of __transaction_state
	txnState
	pending *txnState
	// completing is set while markers are being sent for its prepared transaction.
	completing bool
}

// PartitionFor places a transactional id on __transaction_state as Kafka's
// TransactionStateManager.partitionFor does: Utils.abs(transactionalId.hashCode) %
// partitions, where hashCode is Java's String.hashCode over UTF-16 code units and Utils.abs
// clears the sign bit (so Integer.MIN_VALUE maps to 0, not to itself).
func PartitionFor(transactionalID string, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	var h int32
	for _, unit := range utf16.Encode([]rune(transactionalID)) {
		h = 31*h + int32(unit)
	}
	return (h & 0x7fffffff) % partitions
}

// stateKey is the record key of a transactional id (TransactionLogKey, version 0).
func stateKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: 0, TransactionalID: id}
	return k.AppendTo(nil)
}

// stateValue is the record value of a state, written at version 0 as Kafka does while
// transaction.version is below 2 (TransactionLog.valueToBytes). Empty carries no
// partitions, as Kafka requires.
func stateValue(s txnState) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = 0
	v.ProducerID = s.producerID
	v.ProducerEpoch = s.epoch
	v.TimeoutMillis = s.timeoutMs
	v.State = kmsg.TransactionState(s.state)
	v.LastUpdateTimestamp = s.updateMs
	v.StartTimestamp = s.startMs
	if s.state != stateEmpty {
		v.Topics = []kmsg.TxnMetadataValueTopic{} // Kafka writes an empty list here, and null only for Empty
		for _, tp := range s.sortedPartitions() {
			if n := len(v.Topics); n == 0 || v.Topics[n-1].Topic != tp.Topic {
				v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: tp.Topic})
			}
			last := &v.Topics[len(v.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
	}
	return v.AppendTo(nil)
}

// stateFromValue decodes a value as Kafka's TransactionLog.readTxnRecordValue does: the
// partitions of an Empty state are ignored, and the in-memory-only fields start unset.
func stateFromValue(v *kmsg.TxnMetadataValue) txnState {
	s := txnState{
		producerID:         v.ProducerID,
		previousProducerID: noProducerID,
		epoch:              v.ProducerEpoch,
		lastEpoch:          noProducerEpoch,
		timeoutMs:          v.TimeoutMillis,
		state:              state(v.State),
		partitions:         map[TopicPartition]struct{}{},
		startMs:            v.StartTimestamp,
		updateMs:           v.LastUpdateTimestamp,
	}
	if v.Version >= 1 && v.PreviousProducerID >= 0 {
		s.previousProducerID = v.PreviousProducerID
	}
	if s.state != stateEmpty {
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				s.partitions[TopicPartition{t.Topic, p}] = struct{}{}
			}
		}
	}
	return s
}
