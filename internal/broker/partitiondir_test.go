package broker

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/strand-data/strand/internal/vfs"
)

// TestClaimDir: a partition directory is kept when it is the topic's (whatever the
// formatting of its partition.metadata, or when it has none or an unreadable one) and moved
// aside when it names another topic id.
func TestClaimDir(t *testing.T) {
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	other := [16]byte{16, 15, 14}
	for _, tc := range []struct {
		name     string
		metadata string // "" = no file; "-" = no directory
		kept     bool
	}{
		{"new", "-", false},
		{"no file", "", true},
		{"same id", "version: 0\ntopic_id: " + topicIDString(id) + "\n", true},
		{"same id, other spacing", "version: 0\r\ntopic_id:  " + topicIDString(id), true},
		{"unreadable", "\x00\x01garbage", true},
		{"other id", "version: 0\ntopic_id: " + topicIDString(other) + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			b := &Broker{cfg: Config{FS: mem, DataDir: "/data"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			dir := "/data/t-0"
			segment := filepath.Join(dir, "00000000000000000000.log")
			if err := mem.MkdirAll("/data", 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.metadata != "-" {
				if err := mem.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := vfs.WriteFileSynced(mem, segment, []byte("records")); err != nil {
					t.Fatal(err)
				}
				if tc.metadata != "" {
					if err := vfs.WriteFileSynced(mem, filepath.Join(dir, partitionMetadataFile), []byte(tc.metadata)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := b.claimDir(dir, id); err != nil {
				t.Fatal(err)
			}
			b.bg.Wait()
			if got := vfs.Exists(mem, segment); got != tc.kept {
				t.Fatalf("segment kept: %v, want %v", got, tc.kept)
			}
			raw, err := vfs.ReadFile(mem, filepath.Join(dir, partitionMetadataFile))
			if err != nil || string(raw) != "version: 0\ntopic_id: "+topicIDString(id)+"\n" {
				t.Fatalf("partition.metadata %q, %v", raw, err)
			}
			if ents, _ := mem.ReadDir("/data"); len(ents) != 1 {
				t.Fatalf("data dir holds %d entries, want only t-0 (trash removed)", len(ents))
			}
		})
	}
}
