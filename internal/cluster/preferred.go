package cluster

import (
	"context"
	"time"
)

// Preferred leader election. Leadership moves off a broker when it is fenced or shuts
// down and stays where it went, so after restarts the leaders pile up on the brokers that
// stayed. As Kafka does with auto.leader.rebalance.enable, the controller checks every
// leader.imbalance.check.interval.seconds for partitions whose preferred replica (the
// first, which placement balanced) is live and in the ISR but does not lead, and hands
// them back. (Kafka waits for leader.imbalance.per.broker.percentage; Strand moves any.)

// ElectPreferredLeaders gives every partition whose preferred replica is live and in the
// ISR back to it, and answers how many partitions changed leader.
func (n *Node) ElectPreferredLeaders(ctx context.Context) (int, error) {
	v, err := n.propose(ctx, "preferred-leaders", struct{}{})
	if err != nil {
		return 0, err
	}
	return valueAs[int](v)
}

// rebalanceLoop runs on the controller. It wakes every second so that a changed interval
// takes effect without waiting out the old one.
func (n *Node) rebalanceLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s := n.fsm.state.Load()
			interval := time.Duration(s.BrokerConfigInt("leader.imbalance.check.interval.seconds")) * time.Second
			if now.Sub(last) < interval-10*time.Millisecond {
				continue
			}
			last = now
			if v, _, _ := s.BrokerConfig("auto.leader.rebalance.enable"); v != "true" || !imbalanced(s) {
				continue
			}
			v, err := n.proposeAsController(ctx, "preferred-leaders", struct{}{})
			if moved, _ := v.(int); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Warn("preferred leader election", "err", err)
			} else if moved > 0 {
				n.cfg.Logger.Info("moved partitions back to their preferred leaders", "partitions", moved)
			}
		}
	}
}

// imbalanced reports whether any partition could go back to its preferred leader, so the
// controller proposes only when there is something to do.
func imbalanced(s *State) bool {
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if preferredLeaderMovable(s, &p) {
				return true
			}
		}
	}
	return false
}
