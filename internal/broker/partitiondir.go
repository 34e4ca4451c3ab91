package broker

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strand-data/strand/internal/vfs"
)

// A partition directory records the id of the topic it belongs to in partition.metadata,
// in the format of Kafka's (KIP-516). Topic names are reused: a topic deleted while this
// node was down, or whose directory's removal a crash undid, leaves a directory that a new
// topic of the same name would otherwise open, serving the old records as its own (and,
// as a follower, keeping old records the leader never wrote below the offsets where the
// logs agree by epoch). claimDir moves such a directory aside before the partition opens.

const partitionMetadataFile = "partition.metadata"

// topicIDString is the topic id as Kafka prints it: URL-safe base64 without padding.
func topicIDString(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// claimDir makes dir the directory of the topic with the given id: it moves aside a
// directory that belongs to another topic id, and records the id in a directory that has
// none yet (new, or written before the file existed).
func (b *Broker) claimDir(dir string, id [16]byte) error {
	fs := vfs.Or(b.cfg.FS)
	path := filepath.Join(dir, partitionMetadataFile)
	want := "version: 0\ntopic_id: " + topicIDString(id) + "\n"
	raw, err := vfs.ReadFile(fs, path)
	switch {
	case err == nil && bytes.Equal(raw, []byte(want)):
		return nil
	case err == nil:
		found, ok := parsePartitionMetadata(raw)
		switch {
		case ok && found == topicIDString(id): // this topic's, written otherwise: rewritten below
		case ok:
			b.log.Warn("partition directory belongs to an earlier topic of the same name; moving it aside", "dir", dir,
				"directory_topic_id", found, "topic_id", topicIDString(id))
			if err := b.retireDirs([]string{dir}); err != nil {
				return err
			}
		default:
			b.log.Warn("partition.metadata unreadable; taking the directory as this topic's", "dir", dir, "content", string(raw))
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("partition directory %s: %w", dir, err)
	}
	// One fsync, of the file: its directory entry becomes durable when the journal syncs
	// the new directory after creating its first segment. A crash that loses the entry (or
	// tears the file) only makes the next start take the directory as this topic's again,
	// which it is, since the topic still exists.
	if err := vfs.MkdirAllDurably(fs, dir, 0o755); err != nil {
		return fmt.Errorf("partition directory %s: %w", dir, err)
	}
	if err := vfs.WriteFileSynced(fs, path, []byte(want)); err != nil {
		return fmt.Errorf("partition directory %s: %w", dir, err)
	}
	return nil
}

// parsePartitionMetadata reads the topic id out of a partition.metadata file.
func parsePartitionMetadata(raw []byte) (string, bool) {
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "topic_id:"); ok {
			v = strings.TrimSpace(v)
			if id, err := base64.RawURLEncoding.DecodeString(v); err == nil && len(id) == 16 {
				return v, true
			}
		}
	}
	return "", false
}

// retireDirs renames partition directories (all under the data dir) to -delete names and
// removes them in the background. The renames are made durable first, with one sync of the
// data dir, so a crash leaves each directory's trash or nothing; a start removes leftover
// trash. A directory that is already gone is skipped.
func (b *Broker) retireDirs(dirs []string) error {
	fs := vfs.Or(b.cfg.FS)
	var trash []string
	var errs []error
	for _, dir := range dirs {
		to := dir + "." + strconv.FormatInt(time.Now().UnixNano(), 36) + "-delete"
		if err := fs.Rename(dir, to); err != nil {
			if vfs.Exists(fs, dir) {
				b.log.Error("moving a partition directory aside failed", "dir", dir, "err", err)
				errs = append(errs, fmt.Errorf("moving partition directory %s aside: %w", dir, err))
			}
			continue
		}
		trash = append(trash, to)
	}
	if len(trash) == 0 {
		return errors.Join(errs...)
	}
	fs.SyncDir(b.cfg.DataDir)
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		for _, dir := range trash {
			if err := vfs.RemoveAll(fs, dir); err != nil {
				b.log.Warn("removing a deleted partition's files failed; the next start tries again", "dir", dir, "err", err)
			}
		}
		fs.SyncDir(b.cfg.DataDir)
	}()
	return errors.Join(errs...)
}
