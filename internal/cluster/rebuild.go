package cluster

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// bootstrapIfNew writes the initial configuration on a node that has never belonged to a
// cluster, and marks every node that has as bootstrapped. A node that once belonged to a
// cluster and lost its log never gets here: it rebuilds from the leader instead, since
// bootstrapping it again could let it vote for a candidate missing committed entries.
func bootstrapIfNew(rc *raft.Config, cfg Config, store *metaStores, trans raft.Transport, self raft.ServerAddress, fsys vfs.FS, metaDir string) error {
	has, err := raft.HasExistingState(store.log, store.log, store.snaps)
	if err != nil {
		return fmt.Errorf("metadata state: %w", err)
	}
	if !has {
		servers := []raft.Server{{ID: rc.LocalID, Address: self, Suffrage: raft.Voter}}
		if len(cfg.Voters) > 0 {
			servers = servers[:0]
			for _, v := range cfg.Voters {
				servers = append(servers, raft.Server{ID: raft.ServerID(strconv.Itoa(int(v.ID))), Address: raft.ServerAddress(v.Addr), Suffrage: raft.Voter})
			}
		}
		if err := raft.BootstrapCluster(rc, store.log, store.log, store.snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("bootstrap metadata: %w", err)
		}
	}
	if err := markBootstrapped(fsys, metaDir, cfg.NodeID); err != nil {
		return fmt.Errorf("bootstrap marker: %w", err)
	}
	return nil
}

// watchRebuild lifts the vote guard once this node has applied the log as far as the first
// leader that reached it had committed, and marks the node bootstrapped.
func (n *Node) watchRebuild(ctx context.Context, fsys vfs.FS, metaDir string) {
	defer n.wg.Done()
	var index uint64
	caughtUp := func() bool {
		var ok bool
		index, ok = n.guard.lift(n.raft.AppliedIndex(), n.raft.CurrentTerm())
		return ok
	}
	if pollUntil(ctx, 20*time.Millisecond, caughtUp) != nil {
		return
	}
	n.cfg.Logger.Info("metadata rebuilt from the leader", "index", index, "votes_refused", n.guard.refused.Load())
	if err := markBootstrapped(fsys, metaDir, n.cfg.NodeID); err != nil {
		n.cfg.Logger.Error("bootstrap marker", "err", err)
	}
}

// MetadataRebuilding reports whether this node lost its metadata and is still catching up
// with the leader; until it has, it refuses to vote.
func (n *Node) MetadataRebuilding() bool { return n.guard != nil && n.guard.rebuilding.Load() }

// closeTransport closes raft's transport when it can be closed.
func closeTransport(trans raft.Transport) {
	if c, ok := trans.(io.Closer); ok {
		c.Close()
	}
}

// waitRebuilt returns once the node is not rebuilding its metadata.
func (n *Node) waitRebuilt(ctx context.Context) error {
	if err := pollUntil(ctx, 20*time.Millisecond, func() bool { return !n.MetadataRebuilding() }); err != nil {
		return fmt.Errorf("waiting for the metadata rebuild: %w", err)
	}
	return nil
}

// pollUntil checks cond every interval until it holds, or returns ctx's error.
func pollUntil(ctx context.Context, interval time.Duration, cond func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
