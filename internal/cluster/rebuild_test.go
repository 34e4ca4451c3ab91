package cluster

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func (c *testCluster) metaDir(id int) string { return filepath.Join(c.cfgs[id-1].DataDir, "meta") }

// createTopics gives the cluster some metadata worth losing.
func createTopics(t *testing.T, c *testCluster, count int) {
	t.Helper()
	ctx := ctxFor(t)
	for i := range count {
		if _, err := c.leader().CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: 2, ReplicationFactor: 3}, false); err != nil {
			t.Fatal(err)
		}
	}
	c.everywhere(10*time.Second, "the topics everywhere", func(s *State) bool { return len(s.Topics) == count })
}

func topicIDs(s *State) map[string][16]byte {
	out := map[string][16]byte{}
	for name, tp := range s.Topics {
		out[name] = tp.ID
	}
	return out
}

// damagedDirs are the damaged-* directories in a node's meta dir.
func damagedDirs(t *testing.T, metaDir string) []string {
	entries, err := os.ReadDir(metaDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "damaged-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func flipMiddleOfLog(t *testing.T, storeDir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(storeDir, "log-*.seg"))
	if len(segs) == 0 {
		t.Fatalf("no segments in %s", storeDir)
	}
	path := segs[len(segs)-1]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedMetadataIsRebuiltAndNeverVotes(t *testing.T) {
	c := startCluster(t, 3)
	createTopics(t, c, 6)
	want := topicIDs(c.leader().State())
	leaderID := int(c.leader().NodeID())
	damagedID := int(c.follower().NodeID())

	// Stop the follower, damage its log, and stop the leader too: the remaining voter needs
	// the damaged node's vote to elect anyone, and must not get it.
	c.stop(damagedID)
	flipMiddleOfLog(t, filepath.Join(c.metaDir(damagedID), storeDirName))
	c.stop(leaderID)
	c.open(damagedID)
	d := c.node(int32(damagedID))
	if !d.MetadataRebuilding() {
		t.Fatal("a node with a damaged log is not rebuilding")
	}
	aside := damagedDirs(t, c.metaDir(damagedID))
	if len(aside) != 1 {
		t.Fatalf("damaged dirs %v", aside)
	}
	if segs, _ := filepath.Glob(filepath.Join(c.metaDir(damagedID), aside[0], storeDirName, "log-*.seg")); len(segs) == 0 {
		t.Fatal("the damaged segments were not kept as evidence")
	}
	// Several election timeouts: no leader may emerge, and the candidate's requests are refused.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, n := range c.running() {
			if n.raft.State() == raft.Leader {
				t.Fatalf("node %d was elected with the rebuilding node's help", n.NodeID())
			}
		}
	}
	if d.guard.refused.Load() == 0 {
		t.Fatal("the rebuilding node was never asked for a vote")
	}

	// The old leader returns: a real quorum elects, and the damaged node catches up.
	c.open(leaderID)
	eventually(t, 20*time.Second, "the rebuild to finish", func() bool { return !d.MetadataRebuilding() })
	c.waitReady(1, 3)
	c.everywhere(10*time.Second, "the same topics everywhere", func(s *State) bool { return maps.Equal(topicIDs(s), want) })
	if d.ClusterID() != c.leader().ClusterID() {
		t.Fatalf("cluster ids %q and %q", d.ClusterID(), c.leader().ClusterID())
	}
	// And it takes part again: a new topic commits everywhere.
	if _, err := d.CreateTopic(ctxFor(t), TopicSpec{Name: "after", Partitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	c.everywhere(10*time.Second, "the new topic everywhere", func(s *State) bool { _, ok := s.Topics["after"]; return ok })
}

func TestWipedMetadataRebuildsWithoutBootstrapping(t *testing.T) {
	c := startCluster(t, 3)
	createTopics(t, c, 3)
	want := topicIDs(c.leader().State())
	id := int(c.follower().NodeID())
	c.stop(id)
	meta := c.metaDir(id)
	if _, err := os.Stat(filepath.Join(meta, markerName)); err != nil {
		t.Fatalf("no bootstrap marker: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(meta, storeDirName)); err != nil {
		t.Fatal(err)
	}
	c.open(id)
	n := c.node(int32(id))
	if !n.MetadataRebuilding() {
		t.Fatal("a node whose metadata was wiped is not rebuilding")
	}
	if cfg := n.raft.GetConfiguration(); cfg.Error() == nil && len(cfg.Configuration().Servers) != 0 {
		// Bootstrapping would have written the voters before raft heard from anyone.
		t.Fatalf("wiped node bootstrapped: %v", cfg.Configuration().Servers)
	}
	c.waitReady(id, id)
	if n.MetadataRebuilding() {
		t.Fatal("ready while still rebuilding")
	}
	c.everywhere(10*time.Second, "the same topics everywhere", func(s *State) bool { return maps.Equal(topicIDs(s), want) })
	servers := n.raft.GetConfiguration().Configuration().Servers
	if len(servers) != 3 {
		t.Fatalf("rebuilt node's voters %v", servers)
	}
	ids := map[string]bool{}
	for _, node := range c.running() {
		ids[node.ClusterID()] = true
	}
	if len(ids) != 1 {
		t.Fatalf("cluster ids %v", slices.Collect(maps.Keys(ids)))
	}
}
