package journal

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/strand-data/strand/internal/record"
)

// FuzzVerify writes arbitrary bytes into one segment of a cleanly closed log (so every batch
// is within the recovery point) and verifies it: Verify must not panic, and when a byte of a
// batch changed, the report must be damaged. The one exception is the partition leader
// epoch field, which the batch CRC does not cover (D3) and nothing else on disk records per
// batch.
func FuzzVerify(f *testing.F) {
	template := writeClosedLog(f)
	f.Add(uint8(0), uint32(70), []byte{0xff})
	f.Add(uint8(1), uint32(0), []byte{0, 0, 0, 0, 0, 0, 0, 9})
	f.Add(uint8(2), uint32(8), []byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(uint8(3), uint32(16), []byte{1})
	f.Add(uint8(1), uint32(13), []byte{0xaa})
	f.Fuzz(func(t *testing.T, which uint8, at uint32, data []byte) {
		dir := filepath.Join(t.TempDir(), "t-0")
		copyTree(t, template, dir)
		segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		sort.Strings(segs)
		path := segs[int(which)%len(segs)]
		orig, err := os.ReadFile(path)
		if err != nil || len(orig) == 0 {
			t.Fatalf("segment %s: %d bytes, %v", path, len(orig), err)
		}
		b := append([]byte(nil), orig...)
		start := int(at % uint32(len(b)))
		copy(b[start:], data)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		if changedCoveredByte(orig, b) && !r.IsDamaged() {
			t.Fatalf("changed %x at %d of %s, verify found no damage: %+v", data, start, filepath.Base(path), r.Problems)
		}
	})
}

// changedCoveredByte reports whether new differs from orig (a valid segment) anywhere
// outside the batches' partition leader epoch fields.
func changedCoveredByte(orig, changed []byte) bool {
	for pos := 0; pos < len(orig); {
		n, err := record.PeekSize(orig[pos:])
		if err != nil {
			panic("template segment is not valid")
		}
		for i := pos; i < pos+n; i++ {
			if rel := i - pos; (rel < 12 || rel >= 16) && orig[i] != changed[i] {
				return true
			}
		}
		pos += n
	}
	return false
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
