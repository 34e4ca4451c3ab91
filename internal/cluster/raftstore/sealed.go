package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/strand-data/strand/internal/vfs"
)

// ErrDamaged marks stored metadata that failed a check: a checksum, a frame, a gap between
// entries. Callers branch on it (errors.Is) to rebuild instead of failing.
var ErrDamaged = errors.New("metadata store damaged")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealedMagic opens every small checksummed file: a file that does not start with it was not
// written by this package (or was overwritten), which is damage, not an empty value.
const sealedMagic = "STRNDSF1"

const sealedHeader = len(sealedMagic) + 8 // magic, length, CRC-32C of the payload

// WriteSealedFile durably replaces name with payload framed by a magic, its length and its
// CRC-32C, so that ReadSealedFile can tell a good file from a damaged one.
func WriteSealedFile(fs vfs.FS, name string, payload []byte) error {
	buf := make([]byte, sealedHeader, sealedHeader+len(payload))
	copy(buf, sealedMagic)
	binary.BigEndian.PutUint32(buf[len(sealedMagic):], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[len(sealedMagic)+4:], crc32.Checksum(payload, castagnoli))
	buf = append(buf, payload...)
	if err := vfs.WriteFileDurably(fs, name, buf); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ReadSealedFile returns the payload WriteSealedFile stored in name. A missing file is an
// error satisfying errors.Is(err, fs.ErrNotExist); a file failing its checks wraps ErrDamaged.
func ReadSealedFile(fs vfs.FS, name string) ([]byte, error) {
	data, err := vfs.ReadFile(fs, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) < sealedHeader || string(data[:len(sealedMagic)]) != sealedMagic {
		return nil, fmt.Errorf("%w: %s: bad header", ErrDamaged, name)
	}
	size := binary.BigEndian.Uint32(data[len(sealedMagic):])
	sum := binary.BigEndian.Uint32(data[len(sealedMagic)+4:])
	payload := data[sealedHeader:]
	if uint64(size) != uint64(len(payload)) {
		return nil, fmt.Errorf("%w: %s: length %d, file holds %d", ErrDamaged, name, size, len(payload))
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrDamaged, name)
	}
	return payload, nil
}
