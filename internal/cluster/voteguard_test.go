package cluster

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// send pushes cmd into the inner transport's consumer as a peer would, and returns the
// guard's answer, or nil when the RPC went through to raft (which then reads it from out).
func sendThrough(t *testing.T, inner chan raft.RPC, g *voteGuard, cmd any) *raft.RPCResponse {
	t.Helper()
	resp := make(chan raft.RPCResponse, 1)
	inner <- raft.RPC{Command: cmd, RespChan: resp}
	select {
	case r := <-resp:
		return &r
	case rpc := <-g.Consumer():
		if rpc.Command != cmd {
			t.Fatalf("raft got %T, sent %T", rpc.Command, cmd)
		}
		return nil
	case <-time.After(5 * time.Second):
		t.Fatalf("%T neither answered nor passed on", cmd)
		return nil
	}
}

// fakeTransport is an in-memory transport whose consumer the test feeds.
type fakeTransport struct {
	raft.Transport
	in chan raft.RPC
}

func (f *fakeTransport) Consumer() <-chan raft.RPC { return f.in }

func TestVoteGuardRefusesVotesUntilCaughtUp(t *testing.T) {
	_, inmem := raft.NewInmemTransport("self")
	inner := &fakeTransport{Transport: inmem, in: make(chan raft.RPC)}
	g := newVoteGuard(inner, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer g.Close()

	vote := &raft.RequestVoteRequest{Term: 7, LastLogIndex: 3, LastLogTerm: 6}
	r := sendThrough(t, inner.in, g, vote)
	if r == nil {
		t.Fatal("a vote request reached raft while rebuilding")
	}
	if got := r.Response.(*raft.RequestVoteResponse); got.Granted || got.Term != 7 || r.Error != nil {
		t.Fatalf("vote answered %+v %v", got, r.Error)
	}
	if r := sendThrough(t, inner.in, g, &raft.RequestPreVoteRequest{Term: 8}); r == nil || r.Response.(*raft.RequestPreVoteResponse).Granted {
		t.Fatalf("pre-vote answered %+v", r)
	}
	if r := sendThrough(t, inner.in, g, &raft.TimeoutNowRequest{}); r == nil || r.Error == nil {
		t.Fatalf("timeout-now answered %+v", r)
	}
	if g.refused.Load() != 2 {
		t.Fatalf("refused %d, want 2", g.refused.Load())
	}
	// Entries from a leader pass through and set the target; the guard holds until applied.
	if r := sendThrough(t, inner.in, g, &raft.AppendEntriesRequest{Term: 7, LeaderCommitIndex: 40}); r != nil {
		t.Fatalf("append entries answered by the guard: %+v", r)
	}
	sendThrough(t, inner.in, g, &raft.AppendEntriesRequest{Term: 7, LeaderCommitIndex: 90})
	if _, ok := g.lift(39, 7); ok || !g.rebuilding.Load() {
		t.Fatal("lifted before applying the leader's commit index")
	}
	// A newer leader overrules the one heard first.
	sendThrough(t, inner.in, g, &raft.AppendEntriesRequest{Term: 8, LeaderCommitIndex: 60})
	if _, ok := g.lift(59, 8); ok {
		t.Fatal("lifted below the newer leader's commit index")
	}
	if _, ok := g.lift(60, 7); ok {
		t.Fatal("lifted in an older term than the leader's")
	}
	if index, ok := g.lift(60, 8); !ok || index != 60 {
		t.Fatalf("lift at 60: %d %v", index, ok)
	}
	if r := sendThrough(t, inner.in, g, vote); r != nil {
		t.Fatalf("vote refused after catching up: %+v", r)
	}
}
