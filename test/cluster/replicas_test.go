package cluster

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// batchBytes makes a record batch header good enough for ReadBatches: base offset, length,
// magic 2, CRC and last offset delta, followed by body bytes.
func batchBytes(base int64, records int32, crc uint32) []byte {
	b := make([]byte, 61+10)
	binary.BigEndian.PutUint64(b[0:8], uint64(base))
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)-12))
	b[16] = 2
	binary.BigEndian.PutUint32(b[17:21], crc)
	binary.BigEndian.PutUint32(b[23:27], uint32(records-1))
	return b
}

func writeSegment(t *testing.T, dataDir, topic string, partition int, batches ...[]byte) {
	t.Helper()
	dir := filepath.Join(dataDir, topic+"-"+string(rune('0'+partition)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, b := range batches {
		all = append(all, b...)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.log"), all, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDivergence(t *testing.T) {
	dirs := map[int32]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir(), 4: t.TempDir()}
	// Node 1 and 2 agree; node 3 is behind (a lagging follower, fine) and has a torn tail;
	// node 4 holds no replica. Past the end offset (6) replicas may differ.
	writeSegment(t, dirs[1], "x", 0, batchBytes(0, 3, 0xa), batchBytes(3, 3, 0xb), batchBytes(6, 1, 0xc))
	writeSegment(t, dirs[2], "x", 0, batchBytes(0, 3, 0xa), batchBytes(3, 3, 0xb), batchBytes(6, 1, 0xd))
	writeSegment(t, dirs[3], "x", 0, batchBytes(0, 3, 0xa), batchBytes(3, 3, 0xb)[:30])
	ends := map[int32]int64{0: 6}
	got, compared, err := Divergence(dirs, "x", ends)
	if err != nil || len(got) != 0 || compared != 3 {
		t.Fatalf("agreeing replicas: %v, %d compared, %v", got, compared, err)
	}
	if bs, _ := ReadBatches(filepath.Join(dirs[3], "x-0")); len(bs) != 1 {
		t.Fatalf("torn tail read as %v", bs)
	}

	// Node 2's second batch differs below the end: divergence.
	writeSegment(t, dirs[2], "x", 0, batchBytes(0, 3, 0xa), batchBytes(3, 3, 0xe))
	got, _, err = Divergence(dirs, "x", ends)
	if err != nil || len(got) != 1 || !strings.Contains(got[0].Detail, "node 1 has batch 3-5 crc 0000000b, node 2 has 3-5 crc 0000000e") {
		t.Fatalf("got %v %v, want one divergence at offset 3", got, err)
	}

	// A replica whose batches are cut differently also diverges.
	writeSegment(t, dirs[2], "x", 0, batchBytes(0, 2, 0xa), batchBytes(2, 4, 0xb))
	if got, _, _ = Divergence(dirs, "x", ends); len(got) != 1 {
		t.Fatalf("got %v, want one divergence at offset 0", got)
	}
}
