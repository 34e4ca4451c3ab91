package journal

import (
	"context"
	"github.com/strand-data/strand/internal/vfs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strand-data/strand/internal/record"
)

// writeClosedLog writes 30 batches of 5 records in small segments (several closed ones,
// with index entries) into dir/t-0 and closes it cleanly, so the recovery point is the end.
func writeClosedLog(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "t-0")
	cfg := quietConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 200
	l := openLog(t, dir, cfg)
	for i := 0; i < 30; i++ {
		mustAppend(t, l, batch(t, i, 5, int64(1000+i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustVerify(t *testing.T, dir string) PartitionReport {
	t.Helper()
	r, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func segmentPaths(t testing.TB, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(paths) < 3 {
		t.Fatalf("want at least 3 segments, got %v (%v)", paths, err)
	}
	return paths
}

func flipByte(t testing.TB, path string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pos < 0 {
		pos += int64(len(b))
	}
	b[pos] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func kinds(r PartitionReport) map[string][]Problem {
	out := map[string][]Problem{}
	for _, p := range r.Problems {
		out[p.Kind] = append(out[p.Kind], p)
	}
	return out
}

func TestVerifyCleanLog(t *testing.T) {
	dir := writeClosedLog(t)
	r := mustVerify(t, dir)
	if len(r.Problems) != 0 || r.IsDamaged() {
		t.Fatalf("clean log reported %+v", r.Problems)
	}
	if r.Batches != 30 || r.FirstOffset != 0 || r.LastOffset != 149 || r.RecoveryPoint != 150 || r.Segments < 3 {
		t.Fatalf("summary %+v", r)
	}
}

func TestVerifyFlippedBitInClosedSegment(t *testing.T) {
	dir := writeClosedLog(t)
	seg := segmentPaths(t, dir)[1]
	// A byte inside the first batch's records (past the 61-byte header): only the CRC can tell.
	flipByte(t, seg, 70)
	r := mustVerify(t, dir)
	damage := kinds(r)[KindDamage]
	if !r.IsDamaged() || len(damage) != 1 {
		t.Fatalf("want one damaged batch, got %+v", r.Problems)
	}
	p := damage[0]
	base, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(seg), ".log"), 10, 64)
	if !strings.HasSuffix(p.File, filepath.Base(seg)) || p.Position != 0 || p.FirstOffset != base || p.LastOffset != base+4 ||
		!strings.Contains(p.Detail, "crc") {
		t.Fatalf("problem %+v", p)
	}
	if len(r.Damaged) != 1 || r.Damaged[0] != [2]int64{p.FirstOffset, p.LastOffset} {
		t.Fatalf("damaged ranges %v", r.Damaged)
	}
	// Verification resynchronizes after the bad batch: the others are still counted.
	if r.Batches != 29 {
		t.Fatalf("%d good batches, want 29", r.Batches)
	}
}

func TestVerifyTornTail(t *testing.T) {
	cases := []struct {
		name          string
		segment       func(paths []string) string
		damaged       bool
		wantKind      string
		lowerRecovery bool
	}{
		{"closed segment below the recovery point", func(p []string) string { return p[0] }, true, KindDamage, false},
		{"active segment below the recovery point", func(p []string) string { return p[len(p)-1] }, true, KindDamage, false},
		{"active segment past the recovery point", func(p []string) string { return p[len(p)-1] }, false, KindUncleanStop, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeClosedLog(t)
			if c.lowerRecovery {
				if err := writeCheckpoint(vfs.OS{}, dir, checkpoint{recoveryPoint: 10, logStartOffset: 0}); err != nil {
					t.Fatal(err)
				}
			}
			seg := c.segment(segmentPaths(t, dir))
			st, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(seg, st.Size()-30); err != nil {
				t.Fatal(err)
			}
			r := mustVerify(t, dir)
			if r.IsDamaged() != c.damaged || len(kinds(r)[c.wantKind]) == 0 {
				t.Fatalf("damaged=%v, problems %+v", r.IsDamaged(), r.Problems)
			}
			p := kinds(r)[c.wantKind][0]
			if !strings.HasSuffix(p.File, filepath.Base(seg)) || !strings.Contains(p.Detail, "torn") || p.FirstOffset < 0 {
				t.Fatalf("problem %+v", p)
			}
		})
	}
}

func TestVerifyDamagedMetadataFiles(t *testing.T) {
	cases := []struct {
		name string
		file func(t *testing.T, dir string) string
	}{
		{"offset index", func(t *testing.T, dir string) string {
			return strings.TrimSuffix(segmentPaths(t, dir)[0], ".log") + ".index"
		}},
		{"time index", func(t *testing.T, dir string) string {
			return strings.TrimSuffix(segmentPaths(t, dir)[1], ".log") + ".timeindex"
		}},
		{"checkpoint", func(t *testing.T, dir string) string { return filepath.Join(dir, checkpointFile) }},
		{"leader epochs", func(t *testing.T, dir string) string { return filepath.Join(dir, epochFile) }},
		{"producer snapshot", func(t *testing.T, dir string) string {
			snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotExt))
			if len(snaps) == 0 {
				t.Fatal("no producer snapshot written")
			}
			return snaps[len(snaps)-1]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeClosedLog(t)
			if c.name == "leader epochs" {
				if err := (&epochCache{entries: []EpochEntry{{Epoch: 3, StartOffset: 0}}}).save(vfs.OS{}, dir); err != nil {
					t.Fatal(err)
				}
			}
			path := c.file(t, dir)
			if r := mustVerify(t, dir); r.IsDamaged() {
				t.Fatalf("damaged before the flip: %+v", r.Problems)
			}
			flipByte(t, path, 0)
			r := mustVerify(t, dir)
			damage := kinds(r)[KindDamage]
			if len(damage) != 1 || !strings.HasSuffix(damage[0].File, filepath.Base(path)) {
				t.Fatalf("want one problem with %s, got %+v", filepath.Base(path), r.Problems)
			}
		})
	}
}

func TestVerifyIndexEntryNotAtBoundary(t *testing.T) {
	dir := writeClosedLog(t)
	seg := segmentPaths(t, dir)[0]
	idx := strings.TrimSuffix(seg, ".log") + ".index"
	body, err := readChecked(vfs.OS{}, idx)
	if err != nil || len(body) < trailerSize-4+offsetEntrySize {
		t.Fatalf("index %d bytes: %v", len(body), err)
	}
	body[7]++ // first entry's position, checksum rewritten: only the boundary check can tell
	if err := writeChecked(vfs.OS{}, dir, filepath.Base(idx), body); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, dir)
	damage := kinds(r)[KindDamage]
	if len(damage) != 1 || !strings.Contains(damage[0].Detail, "not a batch boundary") {
		t.Fatalf("problems %+v", r.Problems)
	}
}

func TestVerifyLeftoversAreNotices(t *testing.T) {
	dir := writeClosedLog(t)
	for _, name := range []string{swapFileName(0, 10, cleanedExt), swapFileName(0, 10, swapExt)} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := mustVerify(t, dir)
	if r.IsDamaged() || len(kinds(r)[KindNotice]) != 2 {
		t.Fatalf("problems %+v", r.Problems)
	}
}

func TestVerifyOpensNothingForWriting(t *testing.T) {
	dir := writeClosedLog(t)
	flipByte(t, segmentPaths(t, dir)[0], 70)
	before := snapshotDir(t, dir)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	r := mustVerify(t, dir)
	if !r.IsDamaged() {
		t.Fatal("damage not found")
	}
	if after := snapshotDir(t, dir); after != before {
		t.Fatalf("directory changed:\n%s\n%s", before, after)
	}
}

// snapshotDir is every file's name, size and modification time.
func snapshotDir(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(e.Name() + " " + info.ModTime().String() + " " + strconv.FormatInt(info.Size(), 10) + "\n")
	}
	return sb.String()
}

func TestVerifyDataDirSkipsMetaAndDeleted(t *testing.T) {
	data := t.TempDir()
	for _, name := range []string{"meta", "old-0.abc-delete", "t-0"} {
		if err := os.MkdirAll(filepath.Join(data, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reports, err := VerifyDataDir(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || reports[0].Name != "t-0" {
		t.Fatalf("reports %+v", reports)
	}
}

// TestVerifyCompactedLog: a cleaned log has offset gaps and rewritten segments and indexes;
// none of that is damage, for Verify (live and after close) nor for Scrub.
func TestVerifyCompactedLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "compacted-0")
	l := openLog(t, dir, cleanConfig(nil, 4<<10))
	for i := 0; i < 300; i++ {
		key := []byte("key-" + strconv.Itoa(i%20))
		mustAppend(t, l, buildUpdates(t, []update{{key: key, value: []byte(strings.Repeat("v", 80))}}, int64(i), record.CodecNone))
	}
	st, err := NewCleaner(CleanerConfig{}).Clean(context.Background(), l, Compaction{Force: true})
	if err != nil || !st.Cleaned {
		t.Fatalf("clean: %+v %v", st, err)
	}
	if r := mustVerify(t, dir); r.IsDamaged() {
		t.Fatalf("live compacted log: %+v", r.Problems)
	}
	if res := scrubAll(t, l, nil); len(res.Damage) != 0 || res.Bytes == 0 {
		t.Fatalf("scrub of the compacted log: %d bytes, %+v", res.Bytes, res.Damage)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, dir)
	if len(r.Problems) != 0 || r.LastOffset != 299 {
		t.Fatalf("closed compacted log: %+v", r)
	}
}
