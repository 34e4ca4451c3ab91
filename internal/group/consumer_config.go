package group

import "time"

// consumerSessionTimeout is a KIP-848 group's session timeout: its own
// consumer.session.timeout.ms, else group.consumer.session.timeout.ms.
func (c *Coordinator) consumerSessionTimeout(groupID string) time.Duration {
	if c.cfg.ConsumerGroupConfig != nil {
		if session, _ := c.cfg.ConsumerGroupConfig(groupID); session > 0 {
			return session
		}
	}
	return c.cfg.ConsumerSessionTimeout
}

// consumerHeartbeatInterval is a KIP-848 group's heartbeat interval: its own
// consumer.heartbeat.interval.ms, else group.consumer.heartbeat.interval.ms.
func (c *Coordinator) consumerHeartbeatInterval(groupID string) time.Duration {
	if c.cfg.ConsumerGroupConfig != nil {
		if _, heartbeat := c.cfg.ConsumerGroupConfig(groupID); heartbeat > 0 {
			return heartbeat
		}
	}
	return c.cfg.ConsumerHeartbeatInterval
}
