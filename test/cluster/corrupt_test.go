package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// The damage tools checked on hand-made segments, so that an integrity scenario's clean
// result cannot come from a flip that missed or a checksum that reads nothing.
func TestCorruptTools(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t-0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	closed := append(batchBytes(0, 2, 1), batchBytes(2, 3, 2)...)
	active := append(batchBytes(5, 1, 3), batchBytes(6, 1, 4)...)
	for name, b := range map[string][]byte{"00000000000000000000.log": closed, "00000000000000000005.log": active} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	located, err := LocateBatches(dir)
	if err != nil || len(located) != 4 {
		t.Fatalf("located %d batches, %v", len(located), err)
	}
	if b := located[1]; b.Base != 2 || b.Last != 4 || b.Pos != 71 || b.Size != 71 || filepath.Base(b.File) != "00000000000000000000.log" {
		t.Fatalf("second batch located as %+v", b)
	}
	cb, err := ClosedBatches(dir, 100)
	if err != nil || len(cb) != 2 {
		t.Fatalf("closed batches %v, %v; want the two of the first segment", cb, err)
	}
	if cb, _ := ClosedBatches(dir, 4); len(cb) != 1 {
		t.Fatalf("closed batches below 4: %v", cb)
	}

	sum, n, next, err := BatchesChecksum(dir, 6)
	if err != nil || n != 3 || next != 6 {
		t.Fatalf("checksum below 6: %d batches, next %d, %v", n, next, err)
	}
	if err := FlipBit(cb[1].File, RecordsMiddle(cb[1])); err != nil {
		t.Fatal(err)
	}
	flipped, _, _, _ := BatchesChecksum(dir, 6)
	if flipped == sum {
		t.Fatal("a flipped bit inside a batch left the checksum unchanged")
	}
	if again, _ := LocateBatches(dir); again[1].Batch != located[1].Batch {
		t.Fatal("the flip hit the batch header, not its records")
	}

	what, err := TruncateNewest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "00000000000000000005.log")); fi.Size() != int64(len(active)/2) {
		t.Fatalf("%s: newest segment is %d bytes", what, fi.Size())
	}
	if _, n, next, _ := BatchesChecksum(dir, 100); n != 3 || next != 6 {
		t.Fatalf("after the cut: %d batches up to %d, want the torn last one gone", n, next)
	}
}
