package raftstore

import (
	"errors"
	"os"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

// FuzzStoreOpen writes arbitrary bytes over, or after, the records of a segment. Open must
// not panic, and must either refuse with ErrDamaged or open a log whose every entry up to
// where the damage starts is intact.
func FuzzStoreOpen(f *testing.F) {
	f.Add(int64(0), []byte{0xff}, false)
	f.Add(int64(40), []byte{1, 2, 3}, false)
	f.Add(int64(0), []byte{0, 0, 0, 0}, true)
	f.Add(int64(3), []byte{0, 0, 0, 50, 1, 2, 3, 4}, true)
	f.Fuzz(func(t *testing.T, at int64, junk []byte, appendIt bool) {
		dir := t.TempDir()
		s := openStore(t, dir, 0)
		storeRange(t, s, 1, 8)
		size := s.segments[0].size
		offsets := append([]int64(nil), s.segments[0].offsets...)
		s.Close()
		path := segmentPath(dir, 1)
		file, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if appendIt {
			at = size
		} else {
			at = (at%size + size) % size
		}
		file.WriteAt(junk, at)
		file.Close()

		s2, err := Open(dir, Options{FS: vfs.OS{}, Logger: quiet})
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		defer s2.Close()
		// Every entry wholly before the damage must be there and intact.
		intact := uint64(0)
		for i, off := range offsets {
			end := size
			if i+1 < len(offsets) {
				end = offsets[i+1]
			}
			if end > at && off < at+int64(len(junk)) {
				break
			}
			intact = uint64(i + 1)
		}
		last, _ := s2.LastIndex()
		if last < intact {
			t.Fatalf("opened with %d entries, but %d were untouched", last, intact)
		}
		for i := uint64(1); i <= last; i++ {
			var l raft.Log
			if err := s2.GetLog(i, &l); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			if i <= intact && string(l.Data) != string(entry(i).Data) {
				t.Fatalf("entry %d changed: %q", i, l.Data)
			}
		}
	})
}
