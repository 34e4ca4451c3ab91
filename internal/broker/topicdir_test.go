package broker

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
