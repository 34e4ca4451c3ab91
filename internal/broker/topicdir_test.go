package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/vfs"
)

// TestDeletedTopicLeavesNoFiles: the broker creates and removes partition directories
// through its file system seam. On an in-memory disk, a deleted topic's directories (and
// the trash they are renamed to) are gone, and a crash right after the deletion does not
// bring them back.
func TestDeletedTopicLeavesNoFiles(t *testing.T) {
	mem := vfs.NewMem()
	c := startClusterWith(t, 1, func(i int, cfg *Config) { cfg.FS = mem })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.client())
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "doomed"); err != nil {
		t.Fatal(err)
	}
	prod := c.client(kgo.DefaultProduceTopic("doomed"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dataDir := c.cfgs[0].DataDir
	topicDirs := func(fs vfs.FS) []string {
		ents, err := fs.ReadDir(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "doomed-") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	if got := topicDirs(mem); len(got) != 2 {
		t.Fatalf("partition directories %v, want 2", got)
	}
	if _, err := adm.DeleteTopics(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	// Gone, and durably so: a crash does not bring them back.
	for deadline := time.Now().Add(30 * time.Second); len(topicDirs(mem)) > 0 || len(topicDirs(mem.CrashClone())) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("directories left after the topic was deleted: %v, after a crash: %v", topicDirs(mem), topicDirs(mem.CrashClone()))
		}
	}
	if vfs.Exists(mem, filepath.Join(dataDir, "doomed-0")) {
		t.Fatal("doomed-0 still exists")
	}
}

// TestRecreatedTopicIgnoresAnEarlierTopicsDirectory: a directory left by a deleted topic
// (its node was down during the deletion, or a crash undid the removal) is not opened as
// the partition of a new topic of the same name: partition.metadata names the topic id, and
// a directory of another id is moved aside. Also a topic deleted and created again between
// two looks at the metadata gets a fresh log.
func TestRecreatedTopicIgnoresAnEarlierTopicsDirectory(t *testing.T) {
	c := startClusterWith(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.client())
	prod := c.client(kgo.DefaultProduceTopic("again"))
	dataDir := c.cfgs[0].DataDir
	dir := filepath.Join(dataDir, "again-0")
	create := func() {
		t.Helper()
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, "again"); err != nil {
			t.Fatal(err)
		}
	}
	produce := func(v string) {
		t.Helper()
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deleteTopic := func() {
		t.Helper()
		if _, err := adm.DeleteTopics(ctx, "again"); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); vfs.Exists(vfs.OS{}, dir); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the deleted topic's directory stayed")
			}
		}
	}
	readAll := func() []string {
		t.Helper()
		cons := c.client(kgo.ConsumeTopics("again"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cons.Close()
		end, err := adm.ListEndOffsets(ctx, "again")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := end.Lookup("again", 0)
		var got []string
		for int64(len(got)) < want.Offset && ctx.Err() == nil {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value)) })
		}
		return got
	}

	create()
	produce("old-1")
	produce("old-2")
	stale := filepath.Join(t.TempDir(), "stale")
	if err := os.CopyFS(stale, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, partitionMetadataFile)); err != nil || !strings.HasPrefix(string(raw), "version: 0\ntopic_id: ") {
		t.Fatalf("partition.metadata: %q, %v", raw, err)
	}
	deleteTopic()
	// The earlier topic's directory comes back, as after a node that was down comes up.
	if err := os.CopyFS(dir, os.DirFS(stale)); err != nil {
		t.Fatal(err)
	}
	create()
	produce("new-1")
	if got := readAll(); !slices.Equal(got, []string{"0:new-1"}) {
		t.Fatalf("the new topic reads %v, want only its own record at offset 0", got)
	}

	// Deleted and created again while the broker was busy: it sees only the new topic.
	b := c.brokers[0]
	b.reconcileM.Lock()
	err := b.meta.DeleteTopic(ctx, "again")
	if err == nil {
		_, err = b.meta.CreateTopic(ctx, cluster.TopicSpec{Name: "again", Partitions: 1, ReplicationFactor: 1}, false)
	}
	b.reconcileM.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// A new producer: franz-go never adopts a recreated topic's new id (UNKNOWN_TOPIC_ID until purged).
	prod = c.client(kgo.DefaultProduceTopic("again"))
	produce("newer-1")
	if got := readAll(); !slices.Equal(got, []string{"0:newer-1"}) {
		t.Fatalf("the topic created again reads %v, want only its own record at offset 0", got)
	}
}
