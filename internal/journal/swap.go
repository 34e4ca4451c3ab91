package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/strand-data/strand/internal/vfs"
)

// Cleaned segments replace old ones in steps that a crash may interrupt anywhere:
//
//  1. the cleaned copy of a group of old segments [base, end) is written as
//     <base>-<end>.cleaned and fsynced;
//  2. it is renamed to <base>-<end>.swap and the directory fsynced: the swap is decided;
//  3. the old segments of [base, end) are renamed to .deleted (readers keep their open
//     files for file.delete.delay.ms), their index files removed, the directory fsynced;
//  4. the .swap is renamed to <base>.log and the directory fsynced.
//
// Recovery (Open) finishes or discards each step deterministically: a .cleaned file was
// never decided and is deleted (the old segments are all still there); a .swap file was
// decided, so every .log whose base is in [base, end) is deleted and the .swap becomes
// <base>.log. Either way the log holds the old segments or the new one, never a mix.
// Swaps are decided oldest group first, so a crash between groups leaves older groups
// cleaned and newer ones as they were, which loses no key's latest record: a record is
// only removed when a later one with its key exists, and a tombstone only goes once
// everything before it is clean.

const (
	cleanedExt = ".cleaned"
	swapExt    = ".swap"
)

func swapFileName(base, end int64, ext string) string {
	return fmt.Sprintf("%020d-%020d%s", base, end, ext)
}

// parseSwapName reads <base>-<end><ext>.
func parseSwapName(name, ext string) (base, end int64, ok bool) {
	if !strings.HasSuffix(name, ext) || len(name) != 41+len(ext) || name[20] != '-' {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(name[:20], 10, 64)
	e, err2 := strconv.ParseInt(name[21:41], 10, 64)
	return b, e, err1 == nil && err2 == nil && b >= 0 && e > b
}

// cleanHook marks the steps of a swap; crash tests kill the process at one of them.
var cleanHook = func(step string) {}

// recoverSwaps finishes decided swaps and discards undecided ones, before the log's
// segments are listed.
func recoverSwaps(fs vfs.FS, dir string) error {
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return err
	}
	type swap struct{ base, end int64 }
	var swaps []swap
	var logs []int64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, cleanedExt) {
			if err := fs.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove undecided cleaned segment %s: %w", name, err)
			}
		} else if b, end, ok := parseSwapName(name, swapExt); ok {
			swaps = append(swaps, swap{b, end})
		} else if b, ok := parseSegmentName(name, ".log"); ok {
			logs = append(logs, b)
		}
	}
	if len(swaps) == 0 {
		return nil
	}
	sort.Slice(swaps, func(i, j int) bool { return swaps[i].base < swaps[j].base })
	for _, s := range swaps {
		for _, b := range logs {
			if b < s.base || b >= s.end {
				continue
			}
			for _, ext := range []string{".log", ".index", ".timeindex", txnIndexExt} {
				if err := fs.Remove(filepath.Join(dir, segmentName(b, ext))); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("complete swap %d-%d: %w", s.base, s.end, err)
				}
			}
		}
		for _, ext := range []string{".index", ".timeindex", txnIndexExt} {
			fs.Remove(filepath.Join(dir, segmentName(s.base, ext)))
		}
		if err := fs.Rename(filepath.Join(dir, swapFileName(s.base, s.end, swapExt)), filepath.Join(dir, segmentName(s.base, ".log"))); err != nil {
			return fmt.Errorf("complete swap %d-%d: %w", s.base, s.end, err)
		}
	}
	return syncDir(fs, dir)
}

// errCleanAborted: the log changed under a cleaning pass (retention, truncation, close);
// the pass stops and nothing it wrote is used.
var errCleanAborted = errors.New("log changed during cleaning")

// swapInLocked replaces the old segments olds (contiguous, as the pass saw them with the
// given sizes) by the cleaned segment ns, whose file is the fsynced <base>-<end>.cleaned.
// droppedAborts are the offsets of the ABORT markers the clean removed: their entries
// leave the aborted-transaction index with them.
func (l *Log) swapInLocked(olds []*segment, sizes []int64, ns *segment, end int64, droppedAborts map[int64]bool) error {
	discard := func(err error) error {
		ns.file.Close()
		l.fs.Remove(ns.path)
		return err
	}
	if err := l.writableLocked(); err != nil {
		return discard(err)
	}
	first := -1
	for i, s := range l.segments {
		if s == olds[0] {
			first = i
			break
		}
	}
	if first < 0 || first+len(olds) >= len(l.segments) { // gone, or would include the active segment
		return discard(errCleanAborted)
	}
	for j, s := range olds {
		if l.segments[first+j] != s || s.size.Load() != sizes[j] {
			return discard(errCleanAborted)
		}
	}
	swapPath := filepath.Join(l.dir, swapFileName(ns.base, end, swapExt))
	if err := l.fs.Rename(ns.path, swapPath); err != nil {
		return discard(fmt.Errorf("decide swap of segment %d: %w", ns.base, err))
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		// Undo the decision so this run and the next Open agree on the old segments.
		if l.fs.Rename(swapPath, ns.path) == nil {
			return discard(fmt.Errorf("decide swap of segment %d: %w", ns.base, err))
		}
		l.failed = fmt.Errorf("swap of segment %d neither decided nor undone: %w", ns.base, err)
		return l.failed
	}
	cleanHook("swap-decided")
	// From here on the swap completes, now or at the next Open; a failure leaves the log
	// failed until that reopen.
	fail := func(err error) error {
		l.failed = fmt.Errorf("completing swap of segment %d: %w", ns.base, err)
		l.cfg.Logger.Error("journal: cleaned segment swap failed; reopen completes it", "dir", l.dir, "err", err)
		return l.failed
	}
	for i, s := range olds {
		if err := l.retireSegmentLocked(s); err != nil {
			return fail(err)
		}
		if i == 0 {
			cleanHook("first-old-retired")
		}
	}
	// The old names must be gone on disk before the new <base>.log appears: after a power
	// loss, a <base>.log without its .swap must never sit beside segments it replaced.
	if err := syncDir(l.fs, l.dir); err != nil {
		return fail(err)
	}
	cleanHook("olds-retired")
	newPath := filepath.Join(l.dir, segmentName(ns.base, ".log"))
	if err := l.fs.Rename(swapPath, newPath); err != nil {
		return fail(err)
	}
	cleanHook("swap-renamed")
	if err := syncDir(l.fs, l.dir); err != nil {
		return fail(err)
	}
	ns.path = newPath
	for _, s := range olds {
		for _, a := range s.aborted {
			if !droppedAborts[a.LastOffset] {
				ns.aborted = append(ns.aborted, a)
			}
		}
	}
	if err := ns.writeIndexes(l.fs, l.dir); err != nil {
		l.cfg.Logger.Warn("journal: writing indexes failed; they will be rebuilt on open", "dir", l.dir, "err", err)
	}
	l.segments = append(l.segments[:first:first], append([]*segment{ns}, l.segments[first+len(olds):]...)...)
	return nil
}
