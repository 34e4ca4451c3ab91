package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Broker liveness, as KRaft does it: every node heartbeats the controller (the raft
// leader) every HeartbeatInterval; the controller remembers when it last heard from each
// broker, in memory only, and fences one silent for SessionTimeout by a command in the
// log. A fenced broker that heartbeats again is unfenced by another command. A controller
// that has just been elected has heard nothing yet, so it counts everyone as heard "now".

type heartbeat struct {
	BrokerID     int32
	ShuttingDown bool
}

type heartbeatResponse struct {
	Error *wireError `json:"error,omitempty"`
}

// liveness is the controller's memory of heartbeats; it exists only on the raft leader.
type liveness struct {
	mu        sync.Mutex
	active    bool
	lastHeard map[int32]time.Time
}

// heartbeatLoop sends this broker's heartbeats until ctx ends.
func (n *Node) heartbeatLoop(ctx context.Context) {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		if err := n.sendHeartbeat(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Debug("metadata heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) sendHeartbeat(ctx context.Context) error {
	hb := heartbeat{BrokerID: n.cfg.NodeID, ShuttingDown: n.shuttingDown.Load()}
	if n.raft.State() == raft.Leader {
		return n.receiveHeartbeat(ctx, hb)
	}
	addr, err := n.leaderHTTP()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(hb)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HeartbeatInterval+time.Second)
	defer cancel()
	var resp heartbeatResponse
	if err := n.call(ctx, addr, "/v1/internal/metadata/heartbeat", body, &resp); err != nil {
		return err
	}
	return resp.Error.err()
}

// receiveHeartbeat records a heartbeat on the controller and unfences a fenced broker.
func (n *Node) receiveHeartbeat(ctx context.Context, hb heartbeat) error {
	n.live.mu.Lock()
	if !n.live.active {
		n.live.mu.Unlock()
		return ErrNotController
	}
	n.live.lastHeard[hb.BrokerID] = time.Now()
	n.live.mu.Unlock()
	b, ok := n.fsm.state.Load().Brokers[hb.BrokerID]
	if !ok {
		return ErrUnknownBroker
	}
	if b.Fenced && !hb.ShuttingDown {
		_, err := n.proposeAsController(ctx, "broker-state", cmdBrokerState{ID: hb.BrokerID})
		return err
	}
	return nil
}

// leadershipLoop runs the controller's loops while this node leads the quorum.
func (n *Node) leadershipLoop(ctx context.Context) {
	defer n.wg.Done()
	stop := func() {}
	defer func() { stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-n.raft.LeaderCh():
			stop()
			stop = func() {}
			if leader {
				stop = n.startController(ctx)
			}
		}
	}
}

// startController starts the controller-only loops; the function it returns stops them
// and waits for them.
func (n *Node) startController(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){n.fenceLoop, n.rebalanceLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// fenceLoop fences brokers silent for longer than the session timeout.
func (n *Node) fenceLoop(ctx context.Context) {
	now := time.Now()
	n.live.mu.Lock()
	n.live.active = true
	n.live.lastHeard = map[int32]time.Time{}
	for id := range n.fsm.state.Load().Brokers {
		n.live.lastHeard[id] = now
	}
	n.live.mu.Unlock()
	defer func() {
		n.live.mu.Lock()
		n.live.active = false
		n.live.mu.Unlock()
	}()
	tick := time.NewTicker(max(n.cfg.SessionTimeout/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, id := range n.silentBrokers(time.Now()) {
			b := n.fsm.state.Load().Brokers[id]
			_, err := n.proposeAsController(ctx, "broker-state", cmdBrokerState{ID: id, Fenced: true, ShuttingDown: b.ShuttingDown})
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrUnknownBroker) {
				n.cfg.Logger.Warn("fencing a silent broker", "broker", id, "err", err)
			} else if err == nil {
				n.cfg.Logger.Info("fenced a broker that stopped heartbeating", "broker", id)
			}
		}
	}
}

// silentBrokers are the unfenced brokers not heard from within the session timeout.
func (n *Node) silentBrokers(now time.Time) []int32 {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	var out []int32
	for id, b := range n.fsm.state.Load().Brokers {
		last, ok := n.live.lastHeard[id]
		if !ok {
			// Registered since this controller started: count from now.
			n.live.lastHeard[id] = now
			continue
		}
		if !b.Fenced && now.Sub(last) > n.cfg.SessionTimeout {
			out = append(out, id)
		}
	}
	return out
}
