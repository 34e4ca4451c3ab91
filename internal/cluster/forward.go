package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Any node may propose. The raft leader applies a command itself; any other node sends the
// command to the leader's HTTP listener (POST /v1/internal/metadata/propose), which applies
// it and answers with the value, the error and the log index. The proposer then waits until
// it has applied that index itself, so a caller reads its own writes from State.

// sentinels are the errors callers branch on; they cross the forwarding hop by name.
var sentinels = map[string]error{
	"topic_exists":               ErrTopicExists,
	"unknown_topic":              ErrUnknownTopic,
	"invalid_topic":              ErrInvalidTopic,
	"invalid_partitions":         ErrInvalidPartitions,
	"invalid_replication_factor": ErrInvalidReplicationFactor,
	"invalid_config":             ErrInvalidConfig,
	"not_controller":             ErrNotController,
	"metadata_storage":           ErrMetadataStorage,
	"leadership_lost":            ErrLeadershipLost,
	// A deadline that ran out at the leader is the caller's timeout, not an unknown error.
	"deadline_exceeded":          context.DeadlineExceeded,
	"invalid_request":            ErrInvalidRequest,
	"stale_leader_epoch":         ErrStaleLeaderEpoch,
	"stale_partition_epoch":      ErrStalePartitionEpoch,
	"ineligible_replica":         ErrIneligibleReplica,
	"unknown_broker":             ErrUnknownBroker,
	"no_reassignment":            ErrNoReassignment,
	"invalid_replica_assignment": ErrInvalidReplicaAssignment,
}

// wireError is an error as it crosses the hop: the sentinel's name and the full message.
type wireError struct {
	Sentinel string `json:"sentinel,omitempty"`
	Message  string `json:"message"`
}

func encodeError(err error) *wireError {
	if err == nil {
		return nil
	}
	for name, s := range sentinels {
		if errors.Is(err, s) {
			return &wireError{Sentinel: name, Message: err.Error()}
		}
	}
	return &wireError{Message: err.Error()}
}

// remoteError is an error the leader answered; it unwraps to the sentinel it named.
type remoteError struct {
	sentinel error
	message  string
}

func (e *remoteError) Error() string { return e.message }
func (e *remoteError) Unwrap() error { return e.sentinel }

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	return &remoteError{sentinel: sentinels[w.Sentinel], message: w.Message}
}

// proposeRequest and proposeResponse are the bodies of the forwarding call.
type proposeResponse struct {
	Value json.RawMessage `json:"value,omitempty"`
	Error *wireError      `json:"error,omitempty"`
	Index uint64          `json:"index"`
}

const defaultProposeTimeout = 10 * time.Second

// propose commits a command through the raft leader and returns what the FSM answered.
// A value that crossed the hop is a json.RawMessage; valueAs decodes either form. When the
// leader changes under it, propose retries against the new one until ctx (or a default of
// ten seconds) ends.
func (n *Node) propose(ctx context.Context, typ string, data any) (any, error) {
	entry, err := encodeCommand(typ, data)
	if err != nil {
		return nil, err
	}
	if deferrable[typ] {
		if err := n.MetadataWriteHealth(); err != nil {
			return nil, fmt.Errorf("metadata %s: %w: %v", typ, ErrMetadataStorage, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultProposeTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	for {
		var value any
		var index uint64
		var err error
		if n.raft.State() == raft.Leader {
			value, index, err = n.applyLocal(ctx, entry)
		} else {
			value, index, err = n.forward(ctx, entry)
		}
		if err == nil {
			return value, n.waitApplied(ctx, index)
		}
		if !retryable(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			if herr := n.MetadataWriteHealth(); herr != nil {
				// The leader is gone because this node's store cannot write: say so.
				return nil, fmt.Errorf("metadata %s: %w: %v (%v; last: %v)", typ, ErrMetadataStorage, herr, ctx.Err(), err)
			}
			return nil, fmt.Errorf("metadata %s: %w (last: %v)", typ, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// proposeAsController commits a command only if this node leads the quorum: the
// controller's own decisions (fencing from its in-memory heartbeat times, rebalancing)
// must not be forwarded by a node that has just lost leadership.
func (n *Node) proposeAsController(ctx context.Context, typ string, data any) (any, error) {
	entry, err := encodeCommand(typ, data)
	if err != nil {
		return nil, err
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNotController
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultProposeTimeout)
		defer cancel()
	}
	value, _, err := n.applyLocal(ctx, entry)
	return value, err
}

func encodeCommand(typ string, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(command{Type: typ, Data: raw})
}

// retryable are failures after which the command was certainly not applied, so another
// attempt, maybe at another leader, cannot apply it twice.
func retryable(err error) bool {
	var op *net.OpError
	return errors.Is(err, ErrNotController) || errors.Is(err, errNoLeader) || (errors.As(err, &op) && op.Op == "dial")
}

var errNoLeader = errors.New("no metadata leader known yet")

// deferrable are the commands clients ask for that add to the metadata and can wait: while
// this node's store cannot write, or is spending the space it reserved for a full disk, they
// are refused at once (ErrMetadataStorage) instead of timing out or eating that reserve,
// which is kept for the writes the quorum and the controller need (ISR changes, fencing,
// elections).
var deferrable = map[string]bool{
	"producer-ids":   true,
	"create-topic":   true,
	"add-partitions": true,
	"topic-configs":  true,
	"broker-configs": true,
}

// MetadataWriteHealth is nil while this node's metadata store can write, and otherwise why
// not (see raftstore.Store.Health).
func (n *Node) MetadataWriteHealth() error { return n.store.log.Health() }

// applyLocal applies a command on the raft leader.
func (n *Node) applyLocal(ctx context.Context, entry []byte) (any, uint64, error) {
	timeout := defaultProposeTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	fut := n.raft.Apply(entry, timeout)
	// raft's futures know no context; a waiter ends at commit, timeout or raft shutdown.
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("metadata commit: %w", ctx.Err())
	}
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, 0, fmt.Errorf("%w: %v", ErrNotController, err)
		}
		if herr := n.MetadataWriteHealth(); herr != nil {
			// raft answers a failed log write with its own text; name the cause.
			return nil, 0, fmt.Errorf("metadata commit: %w: %v", ErrMetadataStorage, err)
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return nil, 0, fmt.Errorf("metadata commit: %w: %v", ErrLeadershipLost, err)
		}
		// ErrLeadershipLost and timeouts: the entry may still commit, so no retry.
		return nil, 0, fmt.Errorf("metadata commit: %w", err)
	}
	res, _ := fut.Response().(applyResult)
	return res.value, fut.Index(), res.err
}

// leaderHTTP is the HTTP address of the current raft leader, from its registration.
func (n *Node) leaderHTTP() (string, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", errNoLeader
	}
	v, err := strconv.Atoi(string(id))
	if err != nil {
		return "", fmt.Errorf("raft server id %q: %w", id, err)
	}
	b, ok := n.fsm.state.Load().Brokers[int32(v)]
	if !ok || b.HTTPAddr == "" {
		return "", fmt.Errorf("%w: leader %d has not registered its address here yet", errNoLeader, v)
	}
	return b.HTTPAddr, nil
}

// forward sends a command to the leader.
func (n *Node) forward(ctx context.Context, entry []byte) (any, uint64, error) {
	addr, err := n.leaderHTTP()
	if err != nil {
		return nil, 0, err
	}
	var resp proposeResponse
	if err := n.call(ctx, addr, "/v1/internal/metadata/propose", entry, &resp); err != nil {
		return nil, 0, err
	}
	if err := resp.Error.err(); err != nil {
		return nil, resp.Index, err
	}
	return resp.Value, resp.Index, nil
}

// call POSTs body to another node and decodes its JSON answer.
func (n *Node) call(ctx context.Context, addr, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		// The node's metadata is not open (starting or stopping): nothing was applied.
		return fmt.Errorf("%w: %s%s: HTTP %s", errNoLeader, addr, path, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metadata call %s%s: HTTP %s", addr, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("metadata call %s%s: %w", addr, path, err)
	}
	return nil
}

// waitApplied returns once this node's FSM holds the change at index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		ch := n.Changes()
		if n.fsm.state.Load().Version >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to apply metadata index %d: %w", index, ctx.Err())
		case <-ch:
		}
	}
}

// valueAs reads a proposal's value as T, whether it was applied here or crossed the hop.
func valueAs[T any](v any) (T, error) {
	var out T
	switch v := v.(type) {
	case T:
		return v, nil
	case json.RawMessage:
		if err := json.Unmarshal(v, &out); err != nil {
			return out, fmt.Errorf("metadata answer: %w", err)
		}
		return out, nil
	case nil:
		return out, nil
	}
	return out, fmt.Errorf("metadata answer of type %T", v)
}
