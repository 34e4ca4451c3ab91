package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/partition"
)

// runRetention applies retention (cleanup.policy=delete) to every local partition every
// RetentionCheckInterval (log.retention.check.interval.ms), until ctx ends. It runs apart from the cleaner so that a long cleaning
// pass never holds back the deletion of expired segments. Owned by Run (b.bg).
func (b *Broker) runRetention(ctx context.Context) {
	defer b.bg.Done()
	everyTick(ctx, b.cfg.RetentionCheckInterval, func() { b.applyRetention(ctx) })
}

// runCleaner compacts every local partition whose cleanup.policy includes compact (which
// covers __consumer_offsets), until ctx ends. As Kafka's CleanerThread.doWork
// (storage/.../log/LogCleaner.java): a round that cleaned something is followed at once by
// another; a round that found nothing rests CleanerBackoff (log.cleaner.backoff.ms). Kafka's
// cleaner is not woken early by a log turning dirty, and neither is this one. One cleaner
// serves all partitions, so its key map (CleanerDedupeBufferSize) and I/O budget
// (CleanerIOBytesPerSecond) bound the work of the whole node. Owned by Run (b.bg).
func (b *Broker) runCleaner(ctx context.Context) {
	defer b.bg.Done()
	cleaner := journal.NewCleaner(journal.CleanerConfig{DedupeBufferSize: b.cfg.CleanerDedupeBufferSize, IOBytesPerSecond: b.cfg.CleanerIOBytesPerSecond})
	backoff := time.NewTimer(b.cfg.CleanerBackoff)
	defer backoff.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-backoff.C:
		}
		// A round that cleaned may have left more to clean: look again before resting.
		for ctx.Err() == nil && b.cleanLogs(ctx, cleaner) {
		}
		backoff.Reset(b.cfg.CleanerBackoff)
	}
}

// localPartitions is a snapshot of the hosted replicas.
func (b *Broker) localPartitions() map[topicPartition]*partition.Partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	parts := make(map[topicPartition]*partition.Partition, len(b.partitions))
	for tp, p := range b.partitions {
		parts[tp] = p
	}
	return parts
}

// applyRetention runs one round of retention over the local partitions.
func (b *Broker) applyRetention(ctx context.Context) {
	s := b.meta.State()
	for tp, p := range b.localPartitions() {
		if ctx.Err() != nil {
			return
		}
		if deletes, _ := cleanupPolicy(s, tp.topic); !deletes {
			continue
		}
		l := p.Log()
		r := journal.Retention{Ms: time.Duration(s.TopicConfigInt(tp.topic, "retention.ms")) * time.Millisecond,
			Bytes: s.TopicConfigInt(tp.topic, "retention.bytes")}
		n, err := l.ApplyRetention(r)
		if err != nil && !errors.Is(err, journal.ErrClosed) {
			b.log.Warn("retention failed", "topic", tp.topic, "partition", tp.id, "err", err)
		}
		if n > 0 {
			b.metrics.retentionDeleted.WithLabelValues(tp.topic).Add(float64(n))
			b.log.Debug("retention deleted segments", "topic", tp.topic, "partition", tp.id, "segments", n, "log_start", l.LogStartOffset())
		}
	}
}

// cleanLogs runs one cleaning round over the local compacted partitions and reports whether
// it rewrote any.
func (b *Broker) cleanLogs(ctx context.Context, cleaner *journal.Cleaner) (cleaned bool) {
	s := b.meta.State()
	for tp, p := range b.localPartitions() {
		if ctx.Err() != nil {
			return cleaned
		}
		if _, compacts := cleanupPolicy(s, tp.topic); !compacts {
			continue
		}
		st, err := cleaner.Clean(ctx, p.Log(), compactionOf(s, tp.topic))
		switch {
		case err != nil && ctx.Err() == nil && !errors.Is(err, journal.ErrClosed):
			b.metrics.cleanerErrors.Inc()
			b.log.Warn("log cleaning failed", "topic", tp.topic, "partition", tp.id, "err", err)
		case st.Aborted:
			b.log.Debug("log cleaning stopped: segments changed under it", "topic", tp.topic, "partition", tp.id)
		case st.Cleaned:
			cleaned = true
			b.metrics.cleanerPasses.Inc()
			b.metrics.cleanerBytes.Add(float64(st.DirtyBytes))
			b.log.Debug("log cleaned", "topic", tp.topic, "partition", tp.id, "dirty_ratio", st.DirtyRatio,
				"cleaned_to", st.CleanedTo, "removed", st.RecordsRemoved, "read", st.BytesRead, "written", st.BytesWritten)
		}
	}
	return cleaned
}

// cleanupPolicy reads cleanup.policy: delete, compact, or both.
func cleanupPolicy(s *cluster.State, topic string) (deletes, compacts bool) {
	v, _, _ := s.TopicConfig(topic, "cleanup.policy")
	for _, p := range strings.Split(v, ",") {
		switch strings.TrimSpace(p) {
		case "delete":
			deletes = true
		case "compact":
			compacts = true
		}
	}
	return deletes, compacts
}

func compactionOf(s *cluster.State, topic string) journal.Compaction {
	ratio, err := strconv.ParseFloat(func() string { v, _, _ := s.TopicConfig(topic, "min.cleanable.dirty.ratio"); return v }(), 64)
	if err != nil {
		ratio = 0.5
	}
	ms := func(name string) time.Duration {
		v := s.TopicConfigInt(topic, name)
		if v > int64(1<<63-1)/int64(time.Millisecond) {
			return 0 // Long.MAX_VALUE: no limit
		}
		return time.Duration(v) * time.Millisecond
	}
	return journal.Compaction{DeleteRetention: ms("delete.retention.ms"), MinCompactionLag: ms("min.compaction.lag.ms"),
		MaxCompactionLag: ms("max.compaction.lag.ms"), MinCleanableRatio: ratio}
}
