package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strand-data/strand/internal/journal"
)

// Detection of on-disk damage (issue 8): a background scrubber re-reads closed segments at
// ScrubBytesPerSecond, and a leader validates the CRCs of what it sends to followers. Either
// marks the partition's log damaged from the first bad offset; from then on fetches that
// reach the damaged range get KAFKA_STORAGE_ERROR, so neither consumers nor followers are
// handed bad bytes, while reads below it go on. Quarantine and repair come later.

// scrubIdle is how long the scrubber rests when there was nothing to read (a variable so
// tests can shorten it).
var scrubIdle = 10 * time.Second

// scrubState is the broker's side of damage detection.
type scrubState struct {
	bytes   prometheus.Counter
	damaged *prometheus.CounterVec

	mu       sync.Mutex
	seen     map[string]bool          // damaged batches counted and logged, by file@position
	refusals map[topicPartition]int64 // damage offset last logged as refusing fetches
}

// startScrubber registers the scrub metrics and, unless ScrubBytesPerSecond is 0, starts the
// scrubber, owned by Run (b.bg). Called once by Run before the listener serves.
func (b *Broker) startScrubber(ctx context.Context) {
	s := &scrubState{seen: map[string]bool{}, refusals: map[topicPartition]int64{},
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_scrub_bytes_total", Help: "Bytes of closed segments re-read and validated by the scrubber."}),
		damaged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_scrub_damaged_batches_total",
			Help: "Batches found damaged on disk (bad CRC or framing), by the scrubber or when serving a follower."}, []string{"topic", "partition"}),
	}
	b.reg.MustRegister(s.bytes, s.damaged)
	b.scrub = s
	if b.cfg.ScrubBytesPerSecond <= 0 {
		return
	}
	b.bg.Add(1)
	go b.runScrubber(ctx)
}

// runScrubber visits every local partition in turn, scrubbing about one second's budget of
// each, remembering where it stopped in each, and starts over after the last closed segment.
func (b *Broker) runScrubber(ctx context.Context) {
	defer b.bg.Done()
	throttle := journal.NewThrottle(b.cfg.ScrubBytesPerSecond)
	cursors := map[topicPartition]int64{}
	for ctx.Err() == nil {
		parts := b.localPartitions()
		var read int64
		for tp, p := range parts {
			if ctx.Err() != nil {
				return
			}
			res, err := p.Log().Scrub(ctx, cursors[tp], b.cfg.ScrubBytesPerSecond, throttle)
			if err != nil && !errors.Is(err, journal.ErrClosed) && ctx.Err() == nil {
				b.log.Warn("scrub failed", "topic", tp.topic, "partition", tp.id, "err", err)
				b.noteStorageError(p, err)
			}
			cursors[tp] = res.Next
			read += res.Bytes
			b.scrub.bytes.Add(float64(res.Bytes))
			for _, d := range res.Damage {
				b.noteDamage(tp, d.Segment, d.Position, d.FirstOffset, d.LastOffset, d.Err, "scrubber")
			}
		}
		for tp := range cursors {
			if _, ok := parts[tp]; !ok {
				delete(cursors, tp)
			}
		}
		if read == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cmp.Or(b.cfg.ScrubIdle, scrubIdle)):
			}
		}
	}
}

// noteDamage counts and logs a damaged batch the first time it is found.
func (b *Broker) noteDamage(tp topicPartition, file string, pos, first, last int64, err error, by string) {
	if p, ok := b.partition(tp.topic, tp.id); ok {
		if from, damaged := p.Log().Damaged(); damaged {
			b.quarantine(p, from, by)
		}
	}
	key := file + "@" + strconv.FormatInt(pos, 10)
	b.scrub.mu.Lock()
	seen := b.scrub.seen[key]
	b.scrub.seen[key] = true
	b.scrub.mu.Unlock()
	if seen {
		return
	}
	b.scrub.damaged.WithLabelValues(tp.topic, strconv.Itoa(int(tp.id))).Inc()
	b.log.Error("damaged batch on disk", "found_by", by, "topic", tp.topic, "partition", tp.id, "file", file,
		"position", pos, "first_offset", first, "last_offset", last, "err", err)
}

// readIntact is the fetch path's Read with damage detection: it never serves the damaged
// range of a log (reads below it are cut short of it; reads at or past it fail with
// journal.ErrDamaged, KAFKA_STORAGE_ERROR), and for a follower (replicaID >= 0) it
// validates the CRC of every batch before they are sent. Consumers keep the zero-copy path.
func (b *Broker) readIntact(l *journal.Log, it fetchItem, replicaID int32, maxBytes, limit int64, minOneBatch bool) (journal.ReadResult, error) {
	tp := topicPartition{it.topic, it.partition}
	if from, ok := l.Damaged(); ok {
		if it.fetchOffset >= from && it.fetchOffset < l.LogEndOffset() {
			b.refuseDamaged(tp, from, it.fetchOffset, replicaID)
			return journal.ReadResult{}, fmt.Errorf("%w: offset %d is at or past damaged offset %d", journal.ErrDamaged, it.fetchOffset, from)
		}
		limit = min(limit, from)
	}
	res, err := l.Read(it.fetchOffset, maxBytes, limit, minOneBatch)
	if err != nil || replicaID < 0 || b.scrub == nil {
		return res, err
	}
	if err := l.ValidateRead(res); err != nil {
		var de *journal.DamageError
		if errors.As(err, &de) {
			d := de.Damage
			b.noteDamage(tp, d.Segment, d.Position, d.FirstOffset, d.LastOffset, d.Err, "follower fetch")
			from, _ := l.Damaged()
			b.refuseDamaged(tp, from, it.fetchOffset, replicaID)
		}
		return journal.ReadResult{}, err
	}
	return res, nil
}

// refuseDamaged logs, once per damage mark, that fetches into the damaged range are refused.
func (b *Broker) refuseDamaged(tp topicPartition, from, offset int64, replicaID int32) {
	if b.scrub == nil {
		return
	}
	b.scrub.mu.Lock()
	last, logged := b.scrub.refusals[tp]
	b.scrub.refusals[tp] = from
	b.scrub.mu.Unlock()
	if !logged || last != from {
		b.log.Error("refusing fetches into a damaged range with KAFKA_STORAGE_ERROR", "topic", tp.topic, "partition", tp.id,
			"damaged_from", from, "fetch_offset", offset, "replica", replicaID)
	}
}
