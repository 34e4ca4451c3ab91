package broker

import (
	"testing"
	"time"

	"github.com/strand-data/strand/internal/cluster"
)

// TestTopicConfigsReachRetentionAndCleaner checks how topic configs become retention,
// compaction and segment settings: both policies at once, Kafka's Long.MAX_VALUE meaning no
// limit, and a compacted topic's active segment rolling by max.compaction.lag.ms.
func TestTopicConfigsReachRetentionAndCleaner(t *testing.T) {
	s := &cluster.State{Topics: map[string]*cluster.Topic{
		"plain":   {Name: "plain", Configs: map[string]string{}},
		"both":    {Name: "both", Configs: map[string]string{"cleanup.policy": "compact,delete", "max.compaction.lag.ms": "60000", "segment.ms": "3600000"}},
		"compact": {Name: "compact", Configs: map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.25", "delete.retention.ms": "1000", "min.compaction.lag.ms": "5"}},
	}, BrokerConfigs: map[string]string{}}
	for _, c := range []struct {
		topic             string
		deletes, compacts bool
	}{{"plain", true, false}, {"both", true, true}, {"compact", false, true}} {
		if d, k := cleanupPolicy(s, c.topic); d != c.deletes || k != c.compacts {
			t.Errorf("%s: delete %v compact %v", c.topic, d, k)
		}
	}
	comp := compactionOf(s, "compact")
	if comp.MinCleanableRatio != 0.25 || comp.DeleteRetention != time.Second || comp.MinCompactionLag != 5*time.Millisecond || comp.MaxCompactionLag != 0 {
		t.Errorf("compaction of compact: %+v", comp)
	}
	if comp := compactionOf(s, "both"); comp.MaxCompactionLag != time.Minute || comp.MinCleanableRatio != 0.5 {
		t.Errorf("compaction of both: %+v", comp)
	}
	b := &Broker{cfg: DefaultConfig()}
	if got := b.journalConfig(s, "both").SegmentMs; got != time.Minute {
		t.Errorf("compacted topic rolls after %v, want max.compaction.lag.ms (1m)", got)
	}
	if got := b.journalConfig(s, "plain").SegmentMs; got != 7*24*time.Hour {
		t.Errorf("plain topic rolls after %v", got)
	}
}
