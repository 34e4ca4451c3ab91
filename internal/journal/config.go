package journal

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strand-data/strand/internal/record"
	"github.com/strand-data/strand/internal/vfs"
)

// FsyncPolicy says when appended bytes are forced to disk.
type FsyncPolicy int

const (
	// FsyncAlways: an append returns only after its bytes are fsynced (group commit).
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval: bytes are fsynced every Config.FsyncInterval. A power loss may lose
	// the records appended since the last completed fsync round (about one interval plus
	// one fsync), all of them in the active segment: a roll fsyncs the segment it closes.
	// The log reopens as a valid prefix of what was appended, never with a hole.
	FsyncInterval
	// FsyncNever: the operating system decides; fsync only on roll and clean close. A
	// power loss may lose every record appended to the active segment since it was
	// started, or since the last clean close; the log reopens as a valid prefix.
	FsyncNever
)

// ParseFsyncPolicy reads "always", "interval" or "never".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, fmt.Errorf("fsync policy %q: want always, interval or never", s)
}

func (p FsyncPolicy) String() string {
	switch p {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncPolicy(%d)", int(p))
}

// Config holds a log's settings; DefaultConfig has Kafka's defaults.
type Config struct {
	SegmentBytes       int64         // segment.bytes
	SegmentMs          time.Duration // segment.ms
	IndexIntervalBytes int           // index.interval.bytes
	Fsync              FsyncPolicy
	FsyncInterval      time.Duration
	FileDeleteDelay    time.Duration // file.delete.delay.ms: deleted segments stay open this long for readers
	// CheckpointInterval is how often the recovery point is written
	// (log.flush.offset.checkpoint.interval.ms); negative disables the periodic write.
	CheckpointInterval time.Duration
	// ProducerIDExpiration is producer.id.expiration.ms: a producer that has written nothing
	// for this long is forgotten (its next batch is taken as from a new producer), unless it
	// has a transaction open.
	ProducerIDExpiration time.Duration
	Now                  func() time.Time
	Logger               *slog.Logger
	// FS holds the log's files; nil is the operating system's. Fixed at Open.
	FS vfs.FS
	// Synced, when set, is called after each successful fsync round of the active
	// segment with how long the fsync took, once the durable offset has moved: the
	// partition advances its high watermark from it and the broker times the disk with
	// it. It runs on the log's syncer goroutine, outside the log's locks, and must not
	// block.
	Synced func(took time.Duration)
}

// DefaultConfig returns Kafka's defaults and fsync=always (DESIGN D4).
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		Fsync:              FsyncAlways,
		FsyncInterval:      time.Second,
		FileDeleteDelay:    time.Minute,
		CheckpointInterval: time.Minute,
		// Kafka's default producer.id.expiration.ms: one day.
		ProducerIDExpiration: 24 * time.Hour,
		Now:                  time.Now,
		Logger:               slog.Default(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = d.SegmentMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	if c.FsyncInterval <= 0 {
		c.FsyncInterval = d.FsyncInterval
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.ProducerIDExpiration <= 0 {
		c.ProducerIDExpiration = d.ProducerIDExpiration
	}
	if c.FileDeleteDelay < 0 {
		c.FileDeleteDelay = 0
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	c.FS = vfs.Or(c.FS)
	return c
}

// Errors callers branch on. Corrupt input wraps record.ErrCorrupt.
var (
	ErrCorrupt              = record.ErrCorrupt
	ErrOffsetOutOfRange     = errors.New("offset out of range")
	ErrOutOfOrderSequence   = errors.New("out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")
	ErrUnknownProducerID    = errors.New("unknown producer id")
	// ErrTransactionCoordinatorFenced: a marker came from a transaction coordinator older
	// than the one that wrote the producer's last marker.
	ErrTransactionCoordinatorFenced = errors.New("transaction coordinator fenced")
	// ErrInvalidTxnState: a producer with an open transaction wrote outside it.
	ErrInvalidTxnState = errors.New("invalid transaction state")
	ErrClosed          = errors.New("log closed")
	// ErrLogFailed: an earlier I/O error left the log in a state only a reopen can repair;
	// it still serves reads of what was written before.
	ErrLogFailed = errors.New("log failed after an I/O error")
)
