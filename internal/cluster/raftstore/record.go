package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// A record in a segment is
//
//	length  uint32  bytes of payload
//	crc     uint32  CRC-32C (Castagnoli) of payload
//	payload         index u64, term u64, type u8, appendedAt i64 (unix ns),
//	                len(data) u32, data, len(extensions) u32, extensions
//
// all big-endian. The length comes first so a reader knows how much to check; the CRC covers
// the payload only, so a damaged length shows up as a payload whose CRC fails or as a frame
// running past the end of the file.
const (
	recordHeader  = 8
	payloadFixed  = 8 + 8 + 1 + 8 + 4 + 4
	maxRecordSize = 64 << 20 // a metadata command is far smaller; more is a damaged length
)

var errShortPayload = errors.New("payload shorter than its fields")

// recordSize is the framed size of l.
func recordSize(l *raft.Log) int {
	return recordHeader + payloadFixed + len(l.Data) + len(l.Extensions)
}

// appendRecord appends l, framed, to buf.
func appendRecord(buf []byte, l *raft.Log) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	buf = binary.BigEndian.AppendUint64(buf, l.Index)
	buf = binary.BigEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var appended int64
	if !l.AppendedAt.IsZero() {
		appended = l.AppendedAt.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(appended))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(l.Data)))
	buf = append(buf, l.Data...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	payload := buf[start+recordHeader:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// frameLength reads a record header: the payload length and its CRC.
func frameLength(header []byte) (size uint32, sum uint32) {
	return binary.BigEndian.Uint32(header), binary.BigEndian.Uint32(header[4:])
}

// checkPayload reports whether payload matches the CRC of its header.
func checkPayload(payload []byte, sum uint32) bool {
	return crc32.Checksum(payload, castagnoli) == sum
}

// decodePayload fills l from a checked payload. Data and Extensions are copies.
func decodePayload(payload []byte, l *raft.Log) error {
	if len(payload) < payloadFixed {
		return errShortPayload
	}
	l.Index = binary.BigEndian.Uint64(payload)
	l.Term = binary.BigEndian.Uint64(payload[8:])
	l.Type = raft.LogType(payload[16])
	appended := int64(binary.BigEndian.Uint64(payload[17:]))
	l.AppendedAt = time.Time{}
	if appended != 0 {
		l.AppendedAt = time.Unix(0, appended)
	}
	rest := payload[25:]
	data, rest, err := cutBytes(rest)
	if err != nil {
		return err
	}
	ext, rest, err := cutBytes(rest)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the fields", len(rest))
	}
	l.Data, l.Extensions = data, ext
	return nil
}

// cutBytes takes a length-prefixed byte string off the front of b.
func cutBytes(b []byte) (field, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errShortPayload
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return nil, nil, errShortPayload
	}
	if n == 0 {
		return nil, b, nil
	}
	return append([]byte(nil), b[:n]...), b[n:], nil
}
