package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/strand-data/strand/internal/record"
)

// FuzzRecovery damages a synced log with arbitrary bytes, appended to or written into its
// newest segment, and reopens it: Open must not panic, and every batch that lies wholly
// before the damage must read back byte for byte.
func FuzzRecovery(f *testing.F) {
	f.Add([]byte("garbage"), uint32(0), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 0, 0, 0, 0, 2}, uint32(0), uint8(0))
	f.Add([]byte{0xff}, uint32(500), uint8(1))
	f.Add([]byte{0, 0, 0, 0}, uint32(61*3), uint8(3))
	f.Fuzz(func(t *testing.T, damage []byte, at uint32, mode uint8) {
		dir := t.TempDir()
		cfg := quietConfig()
		cfg.SegmentBytes = 1500
		cfg.IndexIntervalBytes = 128
		cfg.Fsync = FsyncNever // Close syncs; per-append fsyncs would only slow the fuzzer
		l := openLog(t, dir, cfg)
		type stored struct {
			off int64
			raw []byte
		}
		var batches []stored
		for i := 0; i < 12; i++ {
			res := mustAppend(t, l, batch(t, i, 1+i%3, int64(i)))
			raw, err := l.ReadBytes(res.BaseOffset, 1, res.LastOffset+1, true)
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, stored{res.BaseOffset, raw})
		}
		segs := l.Segments()
		last := segs[len(segs)-1]
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, segmentName(last.BaseOffset, ".log"))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Damage starts at this offset in the log; batches ending before it must survive.
		damagedFrom := int64(1 << 62)
		if mode&1 == 0 || last.Size == 0 {
			f.WriteAt(damage, last.Size)
		} else {
			pos := int64(at) % last.Size
			if len(damage) > 0 {
				damagedFrom = offsetAtPosition(t, path, pos)
			}
			f.WriteAt(damage, pos)
		}
		f.Close()
		if mode&2 != 0 {
			os.Remove(filepath.Join(dir, checkpointFile)) // as after a crash before any checkpoint
		}
		l2, err := Open(dir, cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l2.Close()
		for _, b := range batches {
			h, _ := record.ParseHeader(b.raw)
			if h.LastOffset() >= damagedFrom {
				break
			}
			got, err := l2.ReadBytes(b.off, 1, h.LastOffset()+1, true)
			if err != nil || !bytes.Equal(got, b.raw) {
				t.Fatalf("batch at %d lost or changed after damage at offset %d: err %v", b.off, damagedFrom, err)
			}
		}
	})
}

// offsetAtPosition is the base offset of the batch covering byte pos of a segment file.
func offsetAtPosition(t *testing.T, path string, pos int64) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := int64(0)
	for p < int64(len(b)) {
		h, err := record.ParseHeader(b[p:])
		if err != nil || p+int64(h.Size()) > pos {
			if err != nil {
				return -1
			}
			return h.BaseOffset
		}
		p += int64(h.Size())
	}
	return 1 << 62
}
