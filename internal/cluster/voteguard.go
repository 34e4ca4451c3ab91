package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// voteGuard stands between raft and its transport on a node rebuilding lost or damaged
// metadata. Such a node has forgotten entries it may have helped commit, and the term it
// voted in: granting a vote now could elect a leader without those entries. So while it
// rebuilds it refuses every vote and pre-vote, and declines leadership transfers, without
// raft seeing the request; every other RPC passes through unchanged.
//
// It learns how far it must catch up from the leaders that reach it: the commit index in the
// first AppendEntries (or the last index of the snapshot installed) of the newest term seen.
// The node lifts the guard once it has applied that far in that same term (see
// Node.watchRebuild): a deposed leader that reached it first is overruled by the newer
// leader's higher term. A deposed leader alone, cut off from the newer one, can still lift
// the guard early; only a quorum read could rule that out.
type voteGuard struct {
	raft.Transport
	out chan raft.RPC
	log *slog.Logger

	rebuilding atomic.Bool
	refused    atomic.Int64 // votes and pre-votes refused

	mu         sync.Mutex
	target     uint64 // 0 until a leader told us its commit index
	targetTerm uint64 // the term of the leader that did

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// newVoteGuard wraps trans, guarding from the start; Close stops its goroutine.
func newVoteGuard(trans raft.Transport, log *slog.Logger) *voteGuard {
	g := &voteGuard{Transport: trans, out: make(chan raft.RPC), log: log, done: make(chan struct{})}
	g.rebuilding.Store(true)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	go g.run(trans.Consumer())
	return g
}

// Consumer is the filtered stream of RPCs raft consumes.
func (g *voteGuard) Consumer() <-chan raft.RPC { return g.out }

// SetHeartbeatHandler passes heartbeats (AppendEntries without entries, which some
// transports deliver on a fast path outside Consumer) to raft, noting the leader's commit.
func (g *voteGuard) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.Transport.SetHeartbeatHandler(nil)
		return
	}
	g.Transport.SetHeartbeatHandler(func(rpc raft.RPC) {
		g.observe(rpc.Command)
		cb(rpc)
	})
}

var errNoPreVote = errors.New("transport does not support pre-vote")

// RequestPreVote keeps pre-vote working for this node's own campaigns.
func (g *voteGuard) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if pv, ok := g.Transport.(raft.WithPreVote); ok {
		return pv.RequestPreVote(id, target, args, resp)
	}
	return errNoPreVote
}

// Close stops the filter and closes the wrapped transport. Raft calls it at shutdown, and
// the node again at Close.
func (g *voteGuard) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.cancel()
		<-g.done
		if c, ok := g.Transport.(io.Closer); ok {
			err = c.Close()
		}
	})
	return err
}

func (g *voteGuard) run(in <-chan raft.RPC) {
	defer close(g.done)
	for {
		select {
		case <-g.ctx.Done():
			return
		case rpc, ok := <-in:
			if !ok {
				return
			}
			if g.intercept(rpc) {
				continue
			}
			select {
			case g.out <- rpc:
			case <-g.ctx.Done():
				return
			}
		}
	}
}

// intercept answers rpc itself when the guard must keep it from raft.
func (g *voteGuard) intercept(rpc raft.RPC) bool {
	g.observe(rpc.Command)
	if !g.rebuilding.Load() {
		return false
	}
	// The refusal carries the candidate's own term: a higher one would make the candidate
	// step down for nothing, a lower one it ignores; either way it counts no vote from us.
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		g.refused.Add(1)
		g.log.Warn("refusing a metadata vote while rebuilding", "candidate", string(req.ID), "term", req.Term)
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
		return true
	case *raft.RequestPreVoteRequest:
		g.refused.Add(1)
		rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
		return true
	case *raft.TimeoutNowRequest:
		rpc.Respond(nil, errors.New("rebuilding metadata: not taking leadership"))
		return true
	}
	return false
}

func (g *voteGuard) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: g.EncodePeer("", g.LocalAddr())}
}

// observe notes how far the first leader of the newest term to reach us had committed.
func (g *voteGuard) observe(cmd any) {
	var term, commit uint64
	switch req := cmd.(type) {
	case *raft.AppendEntriesRequest:
		term, commit = req.Term, req.LeaderCommitIndex
	case *raft.InstallSnapshotRequest:
		term, commit = req.Term, req.LastLogIndex
	}
	if commit == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.target == 0 || term > g.targetTerm {
		g.target, g.targetTerm = commit, term
	}
}

// lift ends the guard once the node, in the term of the leader it heard from, has applied
// as far as that leader had committed; it reports that index when it did.
func (g *voteGuard) lift(applied, currentTerm uint64) (uint64, bool) {
	g.mu.Lock()
	target, term := g.target, g.targetTerm
	g.mu.Unlock()
	if !g.rebuilding.Load() || target == 0 || term != currentTerm || applied < target {
		return 0, false
	}
	return target, g.rebuilding.CompareAndSwap(true, false)
}
