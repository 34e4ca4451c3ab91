package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestHopKeepsTheCause (issue 18, item 4): an error the leader answers a forwarded proposal
// with must unwrap, at the proposer, to what caused it. A deadline that ran out at the leader
// and a leader that lost its leadership mid-commit used to cross as text only, and the broker
// then answered KAFKA_STORAGE_ERROR (its fallback) for a timeout or a controller change.
func TestHopKeepsTheCause(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"deadline at the leader", fmt.Errorf("metadata commit: %w", context.DeadlineExceeded), context.DeadlineExceeded},
		{"leadership lost", fmt.Errorf("metadata commit: %w: leadership lost while committing log", ErrLeadershipLost), ErrLeadershipLost},
		{"metadata store full", fmt.Errorf("metadata producer-ids: %w: disk full", ErrMetadataStorage), ErrMetadataStorage},
		{"not the controller", ErrNotController, ErrNotController},
	} {
		got := encodeError(tc.err).err()
		if !errors.Is(got, tc.want) || got.Error() != tc.err.Error() {
			t.Errorf("%s: %q came over the hop as %q (unwraps to %v: %v)", tc.name, tc.err, got, tc.want, errors.Is(got, tc.want))
		}
	}
	if retryable(encodeError(fmt.Errorf("x: %w", ErrLeadershipLost)).err()) {
		t.Error("a proposal whose leader lost leadership may still commit: it must not be retried")
	}
}
