package broker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
)

// TestErrorCodeNamesTheCause (issue 18, item 4): errorCode used to answer
// KAFKA_STORAGE_ERROR for every error it did not know, so a client was told its broker's
// disk had failed when a metadata commit lost its leader, or when a forwarded proposal's
// deadline ran out at the leader. Kafka answers an exception it does not map
// UNKNOWN_SERVER_ERROR (Errors.forException), a lost controller NOT_CONTROLLER, a timeout
// REQUEST_TIMED_OUT; only the disk's errors are KAFKA_STORAGE_ERROR.
func TestErrorCodeNamesTheCause(t *testing.T) {
	enospc := &fs.PathError{Op: "write", Path: "/data/t-0/00000000000000000000.log", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name string
		err  error
		want *kerr.Error
	}{
		{"an error nobody classified", errors.New("something else"), kerr.UnknownServerError},
		{"the journal's storage error", fmt.Errorf("append: %w: %v", journal.ErrStorage, enospc), kerr.KafkaStorageError},
		{"an unwrapped I/O error", fmt.Errorf("open: %w", enospc), kerr.KafkaStorageError},
		{"the metadata log cannot be written", fmt.Errorf("metadata create-topic: %w: disk full", cluster.ErrMetadataStorage), kerr.KafkaStorageError},
		{"a metadata commit lost its leader", fmt.Errorf("metadata commit: %w: leadership lost while committing log", cluster.ErrLeadershipLost), kerr.NotController},
		{"not the controller", cluster.ErrNotController, kerr.NotController},
		{"a deadline", fmt.Errorf("metadata create-topic: %w", context.DeadlineExceeded), kerr.RequestTimedOut},
	} {
		if got := errorCode(tc.err); got != tc.want.Code {
			t.Errorf("%s (%v): %v, want %v", tc.name, tc.err, kerr.ErrorForCode(got), tc.want)
		}
	}
}
