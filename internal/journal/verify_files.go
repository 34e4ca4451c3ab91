package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strand-data/strand/internal/vfs"
)

// verifyCheckpoint reads the checkpoint: nil and no error when there is none (a log never
// closed cleanly), an error when it is there but damaged.
func verifyCheckpoint(fs vfs.FS, dir string) (*checkpoint, error) {
	path := filepath.Join(dir, checkpointFile)
	if _, err := fs.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	b, err := readChecked(fs, path)
	if err != nil {
		return nil, err
	}
	if len(b) != 17 || b[0] != 1 {
		return nil, fmt.Errorf("%d bytes of version %d, want 17 of version 1", len(b), b[0])
	}
	cp := checkpoint{recoveryPoint: int64(binary.BigEndian.Uint64(b[1:])), logStartOffset: int64(binary.BigEndian.Uint64(b[9:]))}
	if cp.recoveryPoint < 0 || cp.logStartOffset < 0 {
		return nil, fmt.Errorf("negative offsets: recovery point %d, log start %d", cp.recoveryPoint, cp.logStartOffset)
	}
	return &cp, nil
}

// verifyEpochs checks the leader-epoch-checkpoint's checksum and that epochs and start
// offsets increase.
func verifyEpochs(fs vfs.FS, dir string) []Problem {
	path := filepath.Join(dir, epochFile)
	if _, err := fs.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	bad := func(format string, args ...any) []Problem {
		return []Problem{{Kind: KindDamage, File: epochFile, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: fmt.Sprintf(format, args...)}}
	}
	b, err := readChecked(fs, path)
	if err != nil {
		return bad("%v", err)
	}
	if len(b) < 1 || b[0] != 1 || (len(b)-1)%12 != 0 {
		return bad("%d bytes is not a version 1 list of (epoch, start offset)", len(b))
	}
	if _, ok := loadEpochs(fs, dir); !ok {
		return bad("epochs or start offsets do not increase")
	}
	return nil
}

// verifySnapshots checks every producer snapshot's checksum and encoding.
func verifySnapshots(fs vfs.FS, dir string) []Problem {
	var out []Problem
	for _, off := range snapshotOffsets(fs, dir) {
		name := segmentName(off, snapshotExt)
		b, err := readChecked(fs, filepath.Join(dir, name))
		if err == nil {
			_, _, err = decodeProducers(b)
		}
		if err != nil {
			out = append(out, Problem{Kind: KindDamage, File: name, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: err.Error()})
		}
	}
	return out
}

// verifyCleanerCheckpoint checks the cleaner-checkpoint's checksum and shape.
func verifyCleanerCheckpoint(fs vfs.FS, dir string) []Problem {
	path := filepath.Join(dir, cleanerCheckpointFile)
	if _, err := fs.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	b, err := readChecked(fs, path)
	if err == nil && (len(b) < 29 || b[0] != 1 || len(b)-29 != int(binary.BigEndian.Uint32(b[25:]))*16) {
		err = fmt.Errorf("%d bytes is not a version 1 cleaner checkpoint", len(b))
	}
	if err != nil {
		return []Problem{{Kind: KindDamage, File: cleanerCheckpointFile, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: err.Error()}}
	}
	return nil
}
