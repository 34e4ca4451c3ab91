package journal

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strand-data/strand/internal/vfs"
)

// Verification (`strand debug verify`) is an offline, read-only check of partition
// directories: every file is opened for reading only and nothing is repaired, so it is safe
// on a live node's data dir (it may then report the active segment's tail as an unclean
// stop, or a stale index, which is what an Open at that moment would find too).

// Kinds of findings. Only KindDamage makes a report damaged.
const (
	// KindDamage: bytes that a clean run or a power loss under the fsync policy cannot
	// explain: a bad batch below the recovery point, a checksum mismatch in an index or
	// checkpoint, offsets going backwards.
	KindDamage = "damage"
	// KindUncleanStop: a torn or garbage tail past the checkpointed recovery point, as an
	// unclean stop leaves it; Open truncates it and nothing acknowledged under
	// --fsync=always is lost.
	KindUncleanStop = "unclean-stop"
	// KindNotice: something Open tidies up by design (leftover cleaner files, missing
	// index files), reported so an operator knows.
	KindNotice = "notice"
)

// Problem is one finding, about one file.
type Problem struct {
	Kind string `json:"kind"`
	// File is the path relative to the verified directory.
	File string `json:"file"`
	// Position is the byte position in File where the problem starts, -1 for the whole file.
	Position int64 `json:"position"`
	// FirstOffset and LastOffset bound the records affected, inclusive; -1 when unknown
	// (LastOffset -1 with FirstOffset >= 0 means "to the log end").
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
	Detail      string `json:"detail"`
}

// PartitionReport summarizes one partition directory.
type PartitionReport struct {
	Name     string `json:"name"`
	Segments int    `json:"segments"`
	Batches  int    `json:"batches"`
	Bytes    int64  `json:"bytes"`
	// FirstOffset and LastOffset are those of the first and last good batch; -1 when empty.
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	// RecoveryPoint is the checkpointed offset below which every batch was synced; -1 when
	// there is no readable checkpoint.
	RecoveryPoint int64 `json:"recovery_point"`
	// Damaged lists the offset ranges [first, last] with KindDamage problems (last -1: to the end).
	Damaged  [][2]int64 `json:"damaged"`
	Problems []Problem  `json:"problems"`
}

// IsDamaged reports whether any problem is damage.
func (r *PartitionReport) IsDamaged() bool {
	for _, p := range r.Problems {
		if p.Kind == KindDamage {
			return true
		}
	}
	return false
}

func (r *PartitionReport) add(p Problem) {
	p.File = filepath.Join(r.Name, p.File)
	r.Problems = append(r.Problems, p)
	if p.Kind == KindDamage && p.FirstOffset >= 0 {
		r.Damaged = append(r.Damaged, [2]int64{p.FirstOffset, p.LastOffset})
	}
}

// IsPartitionDir reports whether name looks like a partition directory (<topic>-<partition>),
// as opposed to the metadata directory or a deleted partition awaiting removal.
func IsPartitionDir(name string) bool {
	if name == "meta" || strings.HasSuffix(name, "-delete") {
		return false
	}
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return false
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// VerifyDataDir verifies every partition directory under dataDir, sorted by name.
func VerifyDataDir(dataDir string) ([]PartitionReport, error) {
	return VerifyDataDirFS(vfs.Default, dataDir)
}

// VerifyDataDirFS is VerifyDataDir on the file system fs.
func VerifyDataDirFS(fs vfs.FS, dataDir string) ([]PartitionReport, error) {
	entries, err := fs.ReadDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dataDir, err)
	}
	var out []PartitionReport
	for _, e := range entries {
		if !e.IsDir() || !IsPartitionDir(e.Name()) {
			continue
		}
		r, err := VerifyFS(fs, filepath.Join(dataDir, e.Name()))
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Verify checks one partition directory without writing to it: every segment batch by
// batch, the indexes, the checkpoints and the producer snapshots. The error is only for a
// directory that cannot be listed; everything found inside is in the report.
func Verify(dir string) (PartitionReport, error) { return VerifyFS(vfs.Default, dir) }

// VerifyFS is Verify on the file system fs.
func VerifyFS(fs vfs.FS, dir string) (PartitionReport, error) {
	r := PartitionReport{Name: filepath.Base(dir), FirstOffset: -1, LastOffset: -1, RecoveryPoint: -1}
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return r, fmt.Errorf("verify %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		if base, ok := parseSegmentName(name, ".log"); ok {
			bases = append(bases, base)
			continue
		}
		if detail := leftoverDetail(name); detail != "" {
			r.add(Problem{Kind: KindNotice, File: name, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: detail})
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	cp, cpErr := verifyCheckpoint(fs, dir)
	if cpErr != nil {
		r.add(Problem{Kind: KindDamage, File: checkpointFile, Position: -1, FirstOffset: -1, LastOffset: -1, Detail: cpErr.Error()})
	} else if cp != nil {
		r.RecoveryPoint = cp.recoveryPoint
	}

	prevNext := int64(-1)
	for i, base := range bases {
		active := i == len(bases)-1
		nextBase := int64(-1)
		if !active {
			nextBase = bases[i+1]
		}
		name := segmentName(base, ".log")
		scan, err := scanSegmentFile(fs, filepath.Join(dir, name), base)
		if err != nil {
			r.add(Problem{Kind: KindDamage, File: name, Position: -1, FirstOffset: base, LastOffset: nextBase - 1, Detail: err.Error()})
			continue
		}
		r.Segments++
		r.Batches += scan.batches
		r.Bytes += scan.size
		if scan.batches > 0 {
			if r.FirstOffset < 0 {
				r.FirstOffset = scan.firstOffset
			}
			r.LastOffset = scan.next - 1
		}
		if prevNext >= 0 && base < prevNext {
			r.add(Problem{Kind: KindDamage, File: name, Position: 0, FirstOffset: base, LastOffset: prevNext - 1,
				Detail: fmt.Sprintf("segment starts at offset %d, inside the previous segment ending at %d", base, prevNext)})
		}
		for j, p := range scan.problems {
			kind := KindDamage
			tail := j == len(scan.problems)-1 && p.tail
			if active && tail && (cp == nil || p.first >= cp.recoveryPoint) {
				kind = KindUncleanStop
			}
			last := p.last
			if last < 0 && nextBase >= 0 {
				last = nextBase - 1
			}
			r.add(Problem{Kind: kind, File: name, Position: p.pos, FirstOffset: p.first, LastOffset: last, Detail: p.detail})
		}
		for _, p := range append(verifyIndexes(fs, dir, base, scan, active), verifyTxnIndex(fs, dir, base, scan, active)...) {
			// A segment's indexes are synced before a checkpoint's recovery point passes it;
			// until then a power loss may tear them (Open rebuilds them), which is no damage.
			// A recovery point equal to the segment's end does not pass it: it may have been
			// written while the segment was active (a truncation, a clean close), before
			// the roll that writes its indexes.
			if p.Kind == KindDamage && (cp == nil || scan.next >= cp.recoveryPoint) {
				p.Kind = KindUncleanStop
			}
			r.add(p)
		}
		prevNext = scan.next
	}
	if cp != nil {
		end := prevNext
		if end < 0 {
			end = cp.logStartOffset
		}
		if cp.recoveryPoint > end {
			r.add(Problem{Kind: KindDamage, File: checkpointFile, Position: -1, FirstOffset: end, LastOffset: cp.recoveryPoint - 1,
				Detail: fmt.Sprintf("recovery point %d is past the end of the readable log %d: synced records are missing", cp.recoveryPoint, end)})
		}
	}
	for _, p := range verifyEpochs(fs, dir) {
		r.add(p)
	}
	for _, p := range verifySnapshots(fs, dir) {
		r.add(p)
	}
	for _, p := range verifyCleanerCheckpoint(fs, dir) {
		r.add(p)
	}
	return r, nil
}

// leftoverDetail explains files that only an interrupted run leaves behind; "" for others.
func leftoverDetail(name string) string {
	switch {
	case strings.HasSuffix(name, cleanedExt):
		return "leftover cleaned copy from an interrupted cleaning pass; Open deletes it"
	case strings.HasSuffix(name, swapExt):
		return "leftover decided swap from an interrupted cleaning pass; Open completes it"
	case strings.HasSuffix(name, ".deleted"):
		return "segment waiting for deletion; Open removes it"
	case strings.HasSuffix(name, ".tmp"):
		return "temporary file from an interrupted checkpoint write; Open removes it"
	}
	return ""
}
