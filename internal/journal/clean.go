package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// Compaction is a partition's cleanup.policy=compact settings (its topic configs).
type Compaction struct {
	DeleteRetention   time.Duration // delete.retention.ms: how long tombstones stay after their first clean
	MinCompactionLag  time.Duration // min.compaction.lag.ms: records younger than this are not compacted
	MaxCompactionLag  time.Duration // max.compaction.lag.ms: a dirty record this old forces a clean; <= 0 for none
	MinCleanableRatio float64       // min.cleanable.dirty.ratio
	Force             bool          // clean whatever the dirty ratio (tests, admin)
}

// CleanerConfig is the broker-wide cleaner setup.
type CleanerConfig struct {
	DedupeBufferSize int64 // log.cleaner.dedupe.buffer.size: memory of the key → offset map
	IOBytesPerSecond int64 // log.cleaner.io.max.bytes.per.second: read+write budget; <= 0 for none
	ReadBufferSize   int   // per-segment read buffer; a batch larger than it is read whole
}

// DefaultCleanerConfig has Kafka's defaults for one cleaner thread.
func DefaultCleanerConfig() CleanerConfig {
	return CleanerConfig{DedupeBufferSize: 128 << 20, ReadBufferSize: 1 << 20}
}

// CleanStats describes one pass over one log.
type CleanStats struct {
	Cleaned                 bool    // the pass rewrote segments
	Aborted                 bool    // the log changed under the pass, which stopped early
	DirtyRatio              float64 // dirty bytes / cleanable bytes when the pass looked
	FirstDirty, CleanedTo   int64   // the dirty section compacted: [FirstDirty, CleanedTo)
	DirtyBytes              int64   // bytes of dirty log the key map was built over
	BytesRead, BytesWritten int64
	RecordsRemoved          int64
	SegmentsReplaced        int
}

// Cleaner compacts logs one pass at a time, with a fixed amount of memory (its key map)
// and an I/O budget. One Cleaner serves many logs but runs one pass at a time; a log's
// appends and reads go on during its pass.
type Cleaner struct {
	mu       sync.Mutex // one pass at a time: the fields below are the pass's buffers
	offsets  *offsetMap
	throttle *Throttle
	bufSize  int
	hbuf     [record.HeaderSize]byte
	body     []byte
	pending  int64 // bytes not yet charged to the throttle
}

// NewCleaner allocates the cleaner's key map.
func NewCleaner(cfg CleanerConfig) *Cleaner {
	d := DefaultCleanerConfig()
	if cfg.DedupeBufferSize <= 0 {
		cfg.DedupeBufferSize = d.DedupeBufferSize
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = d.ReadBufferSize
	}
	return &Cleaner{offsets: newOffsetMap(cfg.DedupeBufferSize), throttle: NewThrottle(cfg.IOBytesPerSecond), bufSize: cfg.ReadBufferSize}
}

// ErrDedupeBufferTooSmall: not even one batch's keys fit in the cleaner's key map.
var ErrDedupeBufferTooSmall = errors.New("cleaner dedupe buffer too small for one batch")

// cleanSource is a closed segment as the pass saw it.
type cleanSource struct {
	seg            *segment
	size           int64
	next           int64
	firstBatchTime int64
}

// cleanPlan is what a pass works on, taken under the log's lock.
type cleanPlan struct {
	srcs          []cleanSource // cleanable closed segments from the first one, in order
	logStart      int64
	firstDirty    int64
	cleanBytes    int64
	dirtyBytes    int64
	producerLast  map[int64]int64 // producer id → last offset of its newest batch
	horizon       int64           // tombstones below this offset may go
	txns          cleanTxns       // the transactions of the cleanable section (clean_txn.go)
	horizonDone   int64           // the horizon the last pass applied
	now           int64
	segmentBytes  int64
	indexInterval int
}

// planLocked picks the cleanable part of the log: closed, durable segments, up to the first
// dirty segment holding a record younger than min.compaction.lag.ms or one of a transaction
// still open (as Kafka cleans only below the last stable offset: a record of a transaction
// that may yet abort must not make the key's earlier records go).
func (l *Log) planLocked(c Compaction) cleanPlan {
	p := cleanPlan{logStart: l.logStart, now: l.cfg.Now().UnixMilli(), segmentBytes: l.cfg.SegmentBytes,
		indexInterval: l.cfg.IndexIntervalBytes, producerLast: map[int64]int64{}}
	p.firstDirty = max(l.cleaner.cleanedTo, l.logStart)
	p.horizon = l.cleaner.tombstoneHorizon(p.now, c.DeleteRetention)
	p.horizonDone = l.cleaner.horizon
	durable := l.logEnd
	if l.fsync == FsyncAlways {
		durable = l.sync.durable()
	}
	stable := l.txns.firstUnstable(l.logEnd)
	for _, s := range l.segments[:len(l.segments)-1] {
		if s.next > durable || s.next > stable {
			break
		}
		if s.next > p.firstDirty && c.MinCompactionLag > 0 && s.maxTimestamp > p.now-c.MinCompactionLag.Milliseconds() {
			break
		}
		src := cleanSource{seg: s, size: s.size.Load(), next: s.next, firstBatchTime: s.firstBatchTime}
		p.srcs = append(p.srcs, src)
		switch {
		case src.next <= p.firstDirty:
			p.cleanBytes += src.size
		case s.base >= p.firstDirty:
			p.dirtyBytes += src.size
		default: // the segment holding the first dirty offset: share by offsets
			dirty := int64(float64(src.size) * float64(src.next-p.firstDirty) / float64(src.next-s.base))
			p.dirtyBytes += dirty
			p.cleanBytes += src.size - dirty
		}
	}
	for id, e := range l.producers {
		if len(e.batches) > 0 {
			p.producerLast[id] = e.batches[len(e.batches)-1].lastOffset
		}
	}
	p.txns = collectAborted(p.srcs)
	return p
}

// mustClean: a dirty record has waited max.compaction.lag.ms.
func (p *cleanPlan) mustClean(c Compaction) bool {
	if c.MaxCompactionLag <= 0 || c.MaxCompactionLag.Milliseconds() == math.MaxInt64/int64(time.Millisecond) {
		return false
	}
	for _, s := range p.srcs {
		if s.next > p.firstDirty {
			t := s.firstBatchTime
			return t >= 0 && p.now-t > c.MaxCompactionLag.Milliseconds()
		}
	}
	return false
}

// Clean runs one compaction pass over l if its dirty ratio (or max.compaction.lag.ms) calls
// for one: it maps each key of the dirty section to its latest offset, then rewrites every
// cleanable segment keeping, per key, only that latest record (and tombstones younger than
// delete.retention.ms after their first clean), with offsets, timestamps, headers and codec
// unchanged. Small segments are grouped into one. The active segment is never touched.
func (c *Cleaner) Clean(ctx context.Context, l *Log, cfg Compaction) (CleanStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.mu.RLock()
	if err := l.writableLocked(); err != nil {
		l.mu.RUnlock()
		return CleanStats{}, err
	}
	p := l.planLocked(cfg)
	l.mu.RUnlock()

	st := CleanStats{FirstDirty: p.firstDirty, CleanedTo: p.firstDirty}
	if total := p.cleanBytes + p.dirtyBytes; total > 0 {
		st.DirtyRatio = float64(p.dirtyBytes) / float64(total)
	}
	// Tombstones whose delete.retention.ms has run out since the last pass also call for one.
	tombstonesDue := p.horizon > p.horizonDone
	dirtyEnough := p.dirtyBytes > 0 && st.DirtyRatio >= cfg.MinCleanableRatio
	if len(p.srcs) == 0 || !(cfg.Force || dirtyEnough || tombstonesDue || p.mustClean(cfg)) {
		return st, nil
	}
	mapEnd := p.firstDirty
	if p.dirtyBytes > 0 {
		var err error
		if mapEnd, err = c.buildMap(ctx, &p, &st); err != nil {
			return st, err
		}
	} else {
		// A pass for tombstones and markers past their horizon alone: no key has a newer
		// record, and the map must not answer from another log's pass.
		c.offsets.reset(0)
	}
	st.DirtyBytes = st.BytesRead
	for _, g := range groupSources(p.srcs, mapEnd, p.segmentBytes) {
		replaced, err := c.cleanGroup(ctx, l, &p, g, mapEnd, &st)
		if errors.Is(err, errCleanAborted) {
			// Retention or a truncation changed the segments: the groups already swapped are
			// valid on their own; the next pass starts over from the same first dirty offset.
			st.Aborted = true
			return st, nil
		}
		if err != nil {
			return st, err
		}
		if replaced {
			st.Cleaned = true
			st.SegmentsReplaced += len(g)
		}
	}
	st.CleanedTo = mapEnd

	l.mu.Lock()
	// The mark takes the time the pass ended: its tombstones' delete.retention.ms counts
	// from when readers could first see them cleaned.
	done := l.cfg.Now().UnixMilli()
	l.cleaner.cleanedTo = max(l.cleaner.cleanedTo, mapEnd)
	l.cleaner.lastClean = done
	l.cleaner.horizon = max(l.cleaner.horizon, p.horizon)
	l.cleaner.addMark(cleanMark{offset: mapEnd, time: done}, cfg.DeleteRetention)
	state := l.cleaner.encode()
	l.dropSegmentsBelowStartLocked()
	l.mu.Unlock()
	if err := writeChecked(l.fs, l.dir, cleanerCheckpointFile, state); err != nil {
		return st, fmt.Errorf("cleaner checkpoint: %w", err)
	}
	return st, nil
}

// buildMap fills the key map from the dirty section and returns the offset it reached:
// the end of the cleanable section, or earlier at a batch boundary if the map filled up.
func (c *Cleaner) buildMap(ctx context.Context, p *cleanPlan, st *CleanStats) (int64, error) {
	var keys int64 // offsets in the dirty section: at least its number of records
	for _, src := range p.srcs {
		if src.next > p.firstDirty {
			keys += src.next - max(src.seg.base, p.firstDirty)
		}
	}
	c.offsets.reset(keys)
	mapEnd := p.firstDirty
	full := false
	for _, src := range p.srcs {
		if src.next <= p.firstDirty {
			continue
		}
		err := c.scan(ctx, src, st, func(h record.Header, batch []byte) (bool, error) {
			if h.LastOffset() < p.firstDirty {
				return true, nil
			}
			// An aborted transaction's records are no key's latest: they are removed, and
			// the committed records they would hide stay (Kafka's buildOffsetMapForSegment).
			if !h.IsControl() && !p.txns.isAborted(h) {
				if int(h.RecordCount) > c.offsets.free() {
					full = true
					return false, nil
				}
				recs, err := record.Records(batch)
				if err != nil {
					return false, fmt.Errorf("segment %d offset %d: %w", src.seg.base, h.BaseOffset, err)
				}
				for _, r := range recs {
					if off := h.BaseOffset + int64(r.OffsetDelta); off >= p.firstDirty && r.Key != nil {
						c.offsets.put(r.Key, off)
					}
				}
			}
			mapEnd = h.NextOffset()
			return true, nil
		})
		if err != nil {
			return 0, err
		}
		if full {
			break
		}
		mapEnd = src.next
	}
	if mapEnd == p.firstDirty {
		return 0, ErrDedupeBufferTooSmall
	}
	return mapEnd, nil
}

// scan reads a segment's batches in order through a buffer, charging the throttle.
// visit returns false to stop.
func (c *Cleaner) scan(ctx context.Context, src cleanSource, st *CleanStats, visit func(h record.Header, batch []byte) (bool, error)) error {
	r := bufio.NewReaderSize(io.NewSectionReader(src.seg.file, 0, src.size), c.bufSize)
	for pos := int64(0); pos < src.size; {
		if _, err := io.ReadFull(r, c.hbuf[:]); err != nil {
			return fmt.Errorf("segment %d at %d: %w", src.seg.base, pos, err)
		}
		n, err := record.PeekSize(c.hbuf[:])
		if err != nil {
			return fmt.Errorf("segment %d at %d: %w", src.seg.base, pos, err)
		}
		if cap(c.body) < n {
			c.body = make([]byte, n)
		}
		batch := c.body[:n]
		copy(batch, c.hbuf[:])
		if _, err := io.ReadFull(r, batch[record.HeaderSize:]); err != nil {
			return fmt.Errorf("segment %d at %d: %w", src.seg.base, pos, err)
		}
		h, err := record.Validate(batch)
		if err != nil {
			return fmt.Errorf("segment %d at %d: %w", src.seg.base, pos, err)
		}
		pos += int64(n)
		st.BytesRead += int64(n)
		if err := c.charge(ctx, int64(n)); err != nil {
			return err
		}
		if more, err := visit(h, batch); err != nil || !more {
			return err
		}
	}
	return nil
}

// charge counts bytes against the I/O budget, sleeping in steps of 64 KiB.
func (c *Cleaner) charge(ctx context.Context, n int64) error {
	c.pending += n
	if c.pending < 64<<10 {
		return nil
	}
	n, c.pending = c.pending, 0
	return c.throttle.Wait(ctx, n)
}

// groupSources splits the segments to rewrite (those starting below mapEnd) into runs
// whose combined size fits one segment, as Kafka groups small cleaned segments, and whose
// offsets fit the index's 32-bit relative offsets.
func groupSources(srcs []cleanSource, mapEnd, segmentBytes int64) [][]cleanSource {
	var groups [][]cleanSource
	var cur []cleanSource
	var size int64
	for _, s := range srcs {
		if s.seg.base >= mapEnd {
			break
		}
		if len(cur) > 0 && (size+s.size > segmentBytes || s.next-cur[0].seg.base > math.MaxUint32) {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
		cur = append(cur, s)
		size += s.size
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// cleanGroup writes the cleaned copy of one group and swaps it in. It reports whether the
// group was replaced (a lone segment from which nothing goes is left alone).
func (c *Cleaner) cleanGroup(ctx context.Context, l *Log, p *cleanPlan, g []cleanSource, mapEnd int64, st *CleanStats) (bool, error) {
	base := g[0].seg.base
	last := g[len(g)-1]
	end := max(last.next, last.seg.base+1)
	path := filepath.Join(l.dir, swapFileName(base, end, cleanedExt))
	f, err := vfs.Create(l.fs, path)
	if err != nil {
		return false, fmt.Errorf("create cleaned segment %d: %w", base, err)
	}
	ns := &segment{base: base, path: path, file: f, next: base, maxTimestamp: -1, firstBatchTime: -1, created: g[0].seg.created}
	abandon := func(err error) (bool, error) {
		f.Close()
		l.fs.Remove(path)
		return false, err
	}
	w := bufio.NewWriterSize(f, c.bufSize)
	changed := len(g) > 1
	pos := int64(0)
	var removed int64
	for _, src := range g {
		err := c.scan(ctx, src, st, func(h record.Header, batch []byte) (bool, error) {
			out, dropped, err := c.filterBatch(p, h, batch, mapEnd)
			if err != nil {
				return false, fmt.Errorf("segment %d offset %d: %w", src.seg.base, h.BaseOffset, err)
			}
			removed += dropped
			if out == nil || len(out) != len(batch) || dropped > 0 {
				changed = true
			}
			if out == nil {
				return true, nil
			}
			if _, err := w.Write(out); err != nil {
				return false, err
			}
			nh, _ := record.ParseHeader(out)
			ns.noteBatch(nh, pos, p.indexInterval)
			pos += int64(len(out))
			st.BytesWritten += int64(len(out))
			return true, c.charge(ctx, int64(len(out)))
		})
		if err != nil {
			return abandon(err)
		}
	}
	if !changed {
		return abandon(nil)
	}
	if err := w.Flush(); err != nil {
		return abandon(fmt.Errorf("write cleaned segment %d: %w", base, err))
	}
	ns.size.Store(pos)
	if err := f.Sync(); err != nil {
		return abandon(fmt.Errorf("sync cleaned segment %d: %w", base, err))
	}
	cleanHook("cleaned-written")
	olds := make([]*segment, len(g))
	sizes := make([]int64, len(g))
	for i, s := range g {
		olds[i], sizes[i] = s.seg, s.size
	}
	l.mu.Lock()
	err = l.swapInLocked(olds, sizes, ns, end, p.txns.droppedAborts)
	l.mu.Unlock()
	if err != nil {
		return false, err
	}
	st.RecordsRemoved += removed
	return true, nil
}

// filterBatch decides what of one batch a clean keeps. A record stays when it is at or
// past mapEnd, or is the latest of its key; a tombstone also needs to be above the
// tombstone horizon; records without a key go, as Kafka's cleaner drops them. A batch that
// keeps everything is returned as it was; one that keeps nothing disappears unless it is
// its producer's newest batch, which stays as an empty batch so the producer's sequence
// state survives. An aborted transaction's records all go; a transaction marker goes once
// its transaction has no batch left and it is below the tombstone horizon (clean_txn.go).
func (c *Cleaner) filterBatch(p *cleanPlan, h record.Header, batch []byte, mapEnd int64) ([]byte, int64, error) {
	if h.LastOffset() < p.logStart {
		return nil, int64(h.RecordCount), nil
	}
	if h.IsControl() {
		m, err := record.ParseEndTxnMarker(batch)
		if err != nil || !h.IsTransactional() {
			return batch, 0, nil // not a transaction marker: kept as it is
		}
		if p.txns.onMarker(h) && h.BaseOffset < p.horizon {
			if !m.Commit {
				p.txns.droppedAborts[h.BaseOffset] = true
			}
			return nil, int64(h.RecordCount), nil
		}
		return batch, 0, nil
	}
	aborted := p.txns.isAborted(h)
	p.txns.onBatch(h)
	recs, err := record.Records(batch)
	if err != nil {
		return nil, 0, err
	}
	kept := recs[:0]
	for _, r := range recs {
		off := h.BaseOffset + int64(r.OffsetDelta)
		if aborted {
			continue
		}
		keep := off >= mapEnd
		if !keep && r.Key != nil {
			latest, ok := c.offsets.get(r.Key)
			keep = !ok || off >= latest
			if keep && r.Value == nil && off < p.horizon {
				keep = false
			}
		}
		if keep {
			kept = append(kept, r)
		}
	}
	dropped := int64(len(recs) - len(kept))
	switch {
	case dropped == 0:
		return batch, 0, nil
	case len(kept) > 0:
		out, err := record.Rebuild(h, kept)
		return out, dropped, err
	case h.ProducerID >= 0 && p.producerLast[h.ProducerID] == h.LastOffset():
		out, err := record.Rebuild(h, nil)
		return out, dropped, err
	}
	return nil, dropped, nil
}
