package broker

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/partition"
)

// errorCode maps an error from the layers below to the Kafka error code a broker sends.
// This is the only place codes are chosen for internal errors.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, journal.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, journal.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, journal.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, journal.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, journal.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, journal.ErrTransactionCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, journal.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, partition.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	case partition.IsNotEnoughReplicas(err):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, partition.ErrNotEnoughReplicas):
		return kerr.NotEnoughReplicasAfterAppend.Code
	case errors.Is(err, journal.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, journal.ErrLogFailed), errors.Is(err, journal.ErrStorage), errors.Is(err, journal.ErrDamaged):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, cluster.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, cluster.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, cluster.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, cluster.ErrInvalidReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, cluster.ErrInvalidReplicaAssignment):
		return kerr.InvalidReplicaAssignment.Code
	case errors.Is(err, cluster.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, cluster.ErrMetadataStorage):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, cluster.ErrNotController), errors.Is(err, cluster.ErrLeadershipLost):
		// Only a controller that really lost its leadership: the client asks again.
		return kerr.NotController.Code
	case errors.Is(err, cluster.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code
	}
	// An answer another node gave (the transaction coordinator's to KIP-890 verification)
	// is passed on as it is.
	var kafkaErr *kerr.Error
	if errors.As(err, &kafkaErr) {
		return kafkaErr.Code
	}
	// The journal wraps what the disk did in ErrStorage; an I/O error that reaches here
	// unwrapped is the disk's too. Anything else is not known to be the disk's fault, and
	// Kafka answers an exception it does not map UNKNOWN_SERVER_ERROR (Errors.forException).
	var pathErr *fs.PathError
	var errno syscall.Errno
	if errors.As(err, &pathErr) || errors.As(err, &errno) {
		return kerr.KafkaStorageError.Code
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is the text for responses that carry one; nil when there is no error.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
