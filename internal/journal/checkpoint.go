package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strand-data/strand/internal/vfs"
)

const checkpointFile = "checkpoint"

// checkpoint is what the log records about itself between runs.
type checkpoint struct {
	recoveryPoint  int64 // every batch below this offset is known to be synced
	logStartOffset int64
}

func readCheckpoint(fs vfs.FS, dir string) (checkpoint, bool) {
	b, err := readChecked(fs, filepath.Join(dir, checkpointFile))
	if err != nil || len(b) != 17 || b[0] != 1 {
		return checkpoint{}, false
	}
	return checkpoint{
		recoveryPoint:  int64(binary.BigEndian.Uint64(b[1:])),
		logStartOffset: int64(binary.BigEndian.Uint64(b[9:])),
	}, true
}

func writeCheckpoint(fs vfs.FS, dir string, c checkpoint) error {
	b := []byte{1} // version
	b = binary.BigEndian.AppendUint64(b, uint64(c.recoveryPoint))
	b = binary.BigEndian.AppendUint64(b, uint64(c.logStartOffset))
	return writeChecked(fs, dir, checkpointFile, b)
}

// checkpointMissing tells a fresh directory from a damaged checkpoint, for the log message.
func checkpointMissing(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(filepath.Join(dir, checkpointFile))
	return errors.Is(err, os.ErrNotExist)
}

func (l *Log) saveCheckpointLocked() error {
	c := checkpoint{recoveryPoint: l.recoveryPointLocked(), logStartOffset: l.logStart}
	if err := writeCheckpoint(l.fs, l.dir, c); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	l.checkpointed = c.recoveryPoint
	return nil
}
