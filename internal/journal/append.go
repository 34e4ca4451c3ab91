package journal

import (
	"context"
	"fmt"
	"math"

	"github.com/strand-data/strand/internal/record"
)

// AppendOptions are the broker's choices for one append.
type AppendOptions struct {
	LeaderEpoch   int32 // stamped into every batch and recorded in the epoch cache
	LogAppendTime bool  // message.timestamp.type=LogAppendTime
	// Verification, when Required, is what a transactional batch that opens a transaction
	// must carry: the guard StartVerification gave before the transaction coordinator
	// confirmed the partition (KIP-890 part 1, verify_txn.go).
	Verification Verification
}

// AppendResult says where an append landed.
type AppendResult struct {
	BaseOffset, LastOffset int64
	LogAppendTime          int64 // ms since the epoch
	LogStartOffset         int64
	Records                int
	// Duplicate: the batch repeated one an idempotent producer already wrote; nothing was
	// appended and the offsets are those of the original.
	Duplicate bool
}

// Append validates batches (one or more concatenated RecordBatch v2), checks idempotent
// producer sequences, writes them all or nothing with offsets assigned, and returns once
// they are durable under the fsync policy. The journal patches offsets, leader epoch and
// (with LogAppendTime) timestamps into batches in place: the caller hands the bytes over.
func (l *Log) Append(ctx context.Context, batches []byte, opts AppendOptions) (AppendResult, error) {
	res, err := l.AppendNoWait(batches, opts)
	if err != nil {
		return res, err
	}
	return res, l.WaitDurable(ctx, res.LastOffset+1)
}

// AppendNoWait is Append without waiting for durability; follow it with WaitDurable.
// It lets a caller keep the order of appends while waiting for fsyncs concurrently.
func (l *Log) AppendNoWait(batches []byte, opts AppendOptions) (AppendResult, error) {
	p, err := record.SplitProduced(batches)
	if err != nil {
		return AppendResult{}, err
	}
	return l.AppendProduced(p, opts)
}

// AppendProduced is AppendNoWait for batches the caller has already walked and checked
// with record.SplitProduced: their bytes are not read again before they are written.
func (l *Log) AppendProduced(prod record.Produced, opts AppendOptions) (AppendResult, error) {
	parts, headers, batches := prod.Batches, prod.Headers, prod.Bytes
	if len(parts) == 0 || len(parts) != len(headers) {
		return AppendResult{}, fmt.Errorf("%w: no batches", ErrCorrupt)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendResult{}, err
	}
	if err := l.checkVerifiedLocked(headers, opts.Verification); err != nil {
		return AppendResult{}, err
	}
	if dup, err := l.checkProducersLocked(headers); err != nil || dup != nil {
		if dup != nil {
			return AppendResult{BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset, LogStartOffset: l.logStart,
				LogAppendTime: -1, Duplicate: true}, nil
		}
		return AppendResult{}, err
	}
	now := l.cfg.Now().UnixMilli()
	offset := l.logEnd
	records := 0
	for i, p := range parts {
		record.SetBaseOffset(p, offset)
		record.SetPartitionLeaderEpoch(p, opts.LeaderEpoch)
		if opts.LogAppendTime {
			record.SetMaxTimestampLogAppend(p, now)
			headers[i].MaxTimestamp = now
		}
		headers[i].BaseOffset, headers[i].PartitionLeaderEpoch = offset, opts.LeaderEpoch
		offset = headers[i].NextOffset()
		records += int(headers[i].RecordCount)
	}
	if err := l.writeLocked(batches, headers, now); err != nil {
		return AppendResult{}, err
	}
	l.kickSync()
	return AppendResult{BaseOffset: headers[0].BaseOffset, LastOffset: offset - 1, LogAppendTime: now,
		LogStartOffset: l.logStart, Records: records}, nil
}

// AppendReplicated appends batches that already carry their offsets and leader epochs, as
// a follower copies them from its leader. The first batch must start at LogEndOffset.
func (l *Log) AppendReplicated(ctx context.Context, batches []byte) (AppendResult, error) {
	res, err := l.AppendReplicatedNoWait(batches)
	if err != nil {
		return AppendResult{}, err
	}
	return res, l.WaitDurable(ctx, res.LastOffset+1)
}

// AppendReplicatedNoWait is AppendReplicated without waiting for durability (the fsync
// starts at once under fsync=always); follow it with WaitDurable. A follower appends every
// partition of a fetch answer first and then waits for their fsyncs together.
func (l *Log) AppendReplicatedNoWait(batches []byte) (AppendResult, error) {
	parts, err := record.Split(batches)
	if err != nil {
		return AppendResult{}, err
	}
	if len(parts) == 0 {
		return AppendResult{}, fmt.Errorf("%w: no batches", ErrCorrupt)
	}
	headers := make([]record.Header, len(parts))
	for i, p := range parts {
		headers[i], _ = record.ParseHeader(p)
	}
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	next := l.logEnd
	records := 0
	for _, h := range headers {
		if h.BaseOffset < next || (next == l.logEnd && h.BaseOffset != l.logEnd) {
			l.mu.Unlock()
			return AppendResult{}, fmt.Errorf("%w: replicated batch at offset %d, log end is %d", ErrOffsetOutOfRange, h.BaseOffset, next)
		}
		next = h.NextOffset()
		records += int(h.RecordCount)
	}
	now := l.cfg.Now().UnixMilli()
	err = l.writeLocked(batches, headers, now)
	res := AppendResult{BaseOffset: headers[0].BaseOffset, LastOffset: next - 1, LogAppendTime: now, LogStartOffset: l.logStart, Records: records}
	l.mu.Unlock()
	if err != nil {
		return AppendResult{}, err
	}
	l.kickSync()
	return res, nil
}

func (l *Log) writableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return l.failedErrorLocked()
	}
	return nil
}

// checkProducersLocked checks the producer epochs and idempotent sequences of an append. A
// duplicate is only answered as such when it is the whole append. Transactional batches
// without sequences (offsets the group coordinator writes for a producer) have their epoch
// checked.
func (l *Log) checkProducersLocked(headers []record.Header) (*batchMeta, error) {
	var pending producerTable // later batches of one append see earlier ones
	for _, h := range headers {
		if _, open := l.txns[h.ProducerID]; open && h.ProducerID >= 0 && !h.IsTransactional() {
			// Kafka's ProducerAppendInfo.appendDataBatch: a producer in a transaction
			// writes transactionally until its marker.
			return nil, fmt.Errorf("%w: producer %d wrote a non-transactional batch inside its open transaction", ErrInvalidTxnState, h.ProducerID)
		}
		if h.ProducerID < 0 || h.BaseSequence < 0 && !h.IsTransactional() {
			continue
		}
		table := l.producers
		if pending != nil {
			if _, ok := pending[h.ProducerID]; ok {
				table = pending
			}
		}
		dup, err := table.check(h)
		if err != nil {
			return nil, err
		}
		if dup != nil {
			if len(headers) == 1 {
				return dup, nil
			}
			return nil, fmt.Errorf("%w: producer %d repeated sequence %d inside a multi-batch append", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence)
		}
		if pending == nil {
			pending = producerTable{}
		}
		if e, ok := l.producers[h.ProducerID]; ok && pending[h.ProducerID] == nil {
			c := *e
			c.batches = append([]batchMeta(nil), e.batches...)
			pending[h.ProducerID] = &c
		}
		pending.update(h)
	}
	return nil, nil
}

// writeLocked writes contiguous batches (offsets already patched) at the end of the active
// segment, rolling first if needed, and publishes them. On a write error the segment is cut
// back so nothing partial remains.
func (l *Log) writeLocked(batches []byte, headers []record.Header, now int64) error {
	if err := l.maybeRollLocked(headers[0].BaseOffset, int64(len(batches)), headers[len(headers)-1].NextOffset(), now); err != nil {
		return err
	}
	seg := l.segments[len(l.segments)-1]
	pos := seg.size.Load()
	if _, err := seg.file.WriteAt(batches, pos); err != nil {
		undone := true
		if terr := seg.file.Truncate(pos); terr != nil {
			undone = false
			err = fmt.Errorf("write failed (%w) and could not be undone: %w", err, terr)
		}
		return fmt.Errorf("append to segment %d: %w", seg.base, l.writeErrorLocked(err, undone))
	}
	epochChanged := false
	for _, h := range headers {
		epochChanged = l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) || epochChanged
	}
	if epochChanged {
		if err := l.epochs.save(l.fs, l.dir); err != nil {
			l.cfg.Logger.Warn("journal: saving leader epochs failed; they will be rebuilt on open", "dir", l.dir, "err", err)
		}
	}
	p := pos
	for _, h := range headers {
		seg.noteBatch(h, p, l.cfg.IndexIntervalBytes)
		l.producers.update(h)
		l.noteTxnBatch(seg, h, batches[p-pos:p-pos+int64(h.Size())])
		p += int64(h.Size())
	}
	seg.size.Store(p)
	l.logEnd = headers[len(headers)-1].NextOffset()
	l.notifyLocked()
	return nil
}

// maybeRollLocked starts a new segment at base when the active one is full by size or age,
// or when the append would overflow the index's 32-bit relative offsets or positions.
func (l *Log) maybeRollLocked(base, size, next int64, now int64) error {
	active := l.segments[len(l.segments)-1]
	cur := active.size.Load()
	if cur == 0 {
		return nil
	}
	full := cur+size > l.cfg.SegmentBytes
	// Age counts from when the segment was started, not from its records' timestamps as in
	// Kafka, so a producer sending old timestamps cannot make every batch roll a segment.
	old := now-active.created >= l.cfg.SegmentMs.Milliseconds()
	overflow := next-active.base > math.MaxUint32 || cur+size > math.MaxUint32
	if !full && !old && !overflow {
		return nil
	}
	return l.rollLocked(base)
}

// rollLocked closes the active segment and starts a new one at base. The old segment is
// fsynced before the new one's name can become durable: otherwise a power loss could keep
// the new segment and lose the old one's tail, leaving a hole of records in the middle of
// the log that recovery cannot tell from a compaction gap and that replicas would never
// fetch. (Under fsync=always most of its bytes are synced already, so this costs little.)
func (l *Log) rollLocked(base int64) error {
	active := l.segments[len(l.segments)-1]
	if err := active.file.Sync(); err != nil {
		l.failed = fmt.Errorf("fsync segment %d at roll: %w", active.base, err)
		l.sync.fail(l.failed)
		l.cfg.Logger.Error("journal fsync failed at roll; appends will fail until the log is reopened", "dir", l.dir, "err", err)
		return l.failed
	}
	// Written before the directory sync below, which makes their names durable too.
	if err := active.writeIndexes(l.fs, l.dir); err != nil {
		l.cfg.Logger.Warn("journal: writing indexes failed; they will be rebuilt on open", "dir", l.dir, "err", err)
	}
	seg, err := createSegment(l.fs, l.dir, base, l.cfg.Now().UnixMilli())
	if err != nil {
		return err
	}
	if err := syncDir(l.fs, l.dir); err != nil {
		seg.file.Close()
		return err
	}
	l.segments = append(l.segments, seg)
	if err := l.producers.save(l.fs, l.dir, base, l.txns); err != nil {
		l.cfg.Logger.Warn("journal: producer snapshot failed; state will be rebuilt from the log", "dir", l.dir, "err", err)
	}
	pruneSnapshots(l.fs, l.dir, 3)
	return nil
}
