package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/strand-data/strand/internal/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t testing.TB, dir string, segSize int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{FS: vfs.OS{}, SegmentSize: segSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("command %d", i)),
		AppendedAt: time.Unix(0, int64(i)*1000)}
}

func storeRange(t testing.TB, s *Store, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

func checkRange(t testing.TB, s *Store, from, to uint64) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != from || last != to {
		t.Fatalf("log %d..%d, want %d..%d", first, last, from, to)
	}
	for i := from; i <= to && from > 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want := entry(i)
		if got.Index != i || got.Term != want.Term || !bytes.Equal(got.Data, want.Data) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d: %+v, want %+v", i, got, want)
		}
	}
	var l raft.Log
	if err := s.GetLog(to+1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry past the end: %v", err)
	}
}

func TestStoreAppendDeleteReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 200) // small segments: many rolls
	for i := uint64(1); i <= 50; i += 5 {
		storeRange(t, s, i, i+4)
	}
	storeRange(t, s, 51, 51)
	checkRange(t, s, 1, 51)
	if err := s.DeleteRange(1, 20); err != nil { // prefix, mid-segment
		t.Fatal(err)
	}
	checkRange(t, s, 21, 51)
	if len(s.segments) >= 10 {
		t.Fatalf("%d segments after deleting a prefix", len(s.segments))
	}
	if err := s.DeleteRange(45, 51); err != nil { // suffix
		t.Fatal(err)
	}
	checkRange(t, s, 21, 44)
	if err := s.DeleteRange(30, 35); err == nil {
		t.Fatal("deleting inside the log succeeded")
	}
	storeRange(t, s, 45, 60)
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, dir, 200)
	checkRange(t, s, 21, 60)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("term %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Fatalf("vote %q, %v", v, err)
	}
	if _, err := s.Get([]byte("nope")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v", err)
	}
	// Delete everything, then restart past a snapshot.
	if err := s.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 0, 0)
	storeRange(t, s, 100, 105)
	s.Close()
	s = openStore(t, dir, 200)
	checkRange(t, s, 100, 105)
	if bases, _ := listSegments(vfs.OS{}, dir); len(bases) != 1 || bases[0] != 100 {
		t.Fatalf("segments left %v", bases)
	}
}

// newestSegment is the path of the last segment file in dir.
func newestSegment(t *testing.T, dir string) string {
	bases, err := listSegments(vfs.OS{}, dir)
	if err != nil || len(bases) == 0 {
		t.Fatalf("segments %v %v", bases, err)
	}
	return segmentPath(dir, bases[len(bases)-1])
}

func TestStoreTornTailTruncated(t *testing.T) {
	for _, cut := range []int{1, 5, 9, 20} {
		dir := t.TempDir()
		s := openStore(t, dir, 0)
		storeRange(t, s, 1, 10)
		s.Close()
		path := newestSegment(t, dir)
		info, _ := os.Stat(path)
		if err := os.Truncate(path, info.Size()-int64(cut)); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, 0)
		checkRange(t, s, 1, 9)
		storeRange(t, s, 10, 12) // appends after the cut
		checkRange(t, s, 1, 12)
		s.Close()
	}
	// Zeros past the end (size extended, data never written) are torn too.
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	storeRange(t, s, 1, 3)
	s.Close()
	f, _ := os.OpenFile(newestSegment(t, dir), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 100))
	f.Close()
	checkRange(t, openStore(t, dir, 0), 1, 3)
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, at)
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestStoreDamageDetected(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"flipped bit mid-log", func(t *testing.T, dir string) {
			path := newestSegment(t, dir)
			info, _ := os.Stat(path)
			flipByte(t, path, info.Size()/2)
		}},
		{"damaged stable file", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, stableFile), 20) }},
		{"damaged first index", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, firstIndexFile), 18) }},
		{"missing first index", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, firstIndexFile)) }},
		{"hole between segments", func(t *testing.T, dir string) {
			bases, _ := listSegments(vfs.OS{}, dir)
			os.Remove(segmentPath(dir, bases[1]))
		}},
		{"oldest segment gone", func(t *testing.T, dir string) {
			bases, _ := listSegments(vfs.OS{}, dir)
			os.Remove(segmentPath(dir, bases[0]))
		}},
		{"torn record in an older segment", func(t *testing.T, dir string) {
			bases, _ := listSegments(vfs.OS{}, dir)
			path := segmentPath(dir, bases[0])
			info, _ := os.Stat(path)
			os.Truncate(path, info.Size()-3)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, 300)
			for i := uint64(1); i <= 40; i += 5 {
				storeRange(t, s, i, i+4)
			}
			s.SetUint64([]byte("CurrentTerm"), 3)
			s.Close()
			tc.damage(t, dir)
			_, err := Open(dir, Options{FS: vfs.OS{}, Logger: quiet})
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open: %v, want ErrDamaged", err)
			}
		})
	}
}

func TestStoreGetLogChecksAgain(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	storeRange(t, s, 1, 5)
	flipByte(t, newestSegment(t, dir), s.segments[0].offsets[2]+12)
	var l raft.Log
	if err := s.GetLog(3, &l); !errors.Is(err, ErrDamaged) {
		t.Fatalf("reading a flipped entry: %v", err)
	}
}

func TestCheckChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	storeRange(t, s, 1, 10)
	s.Close()
	if err := Check(vfs.OS{}, dir, filepath.Join(dir, "snapshots")); err != nil {
		t.Fatalf("intact store: %v", err)
	}
	path := newestSegment(t, dir)
	info, _ := os.Stat(path)
	os.Truncate(path, info.Size()-3)
	if err := Check(vfs.OS{}, dir, filepath.Join(dir, "snapshots")); err != nil {
		t.Fatalf("torn tail: %v", err)
	}
	if after, _ := os.Stat(path); after.Size() != info.Size()-3 {
		t.Fatal("Check truncated the torn tail")
	}
	flipByte(t, path, info.Size()/3)
	if err := Check(vfs.OS{}, dir, filepath.Join(dir, "snapshots")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged: %v", err)
	}
}
