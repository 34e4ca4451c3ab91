package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FsyncConfig is the disk reference: appends of WriteSize bytes to Files files in Dir, each
// followed by fdatasync, back to back, for Duration. It is what a partition's group commit
// costs on this filesystem without Strand in the way (a log append grows its file, so each
// fdatasync also commits the new size), measured so that e2e latency can be read against it
// in the same run.
type FsyncConfig struct {
	Dir       string
	WriteSize int
	Files     int
	Duration  time.Duration
}

// FsyncResult is the reference's fdatasync latency (the write before it is not counted).
type FsyncResult struct {
	Dir       string       `json:"dir"`
	WriteSize int          `json:"write_size"`
	Files     int          `json:"files"`
	Syncs     int64        `json:"syncs"`
	Seconds   float64      `json:"seconds"`
	Latency   *Percentiles `json:"fdatasync"`
}

// Fsync runs the disk reference. Its files are removed afterwards.
func Fsync(ctx context.Context, cfg FsyncConfig) (*FsyncResult, error) {
	switch {
	case cfg.WriteSize < 1:
		return nil, errors.New("--write-size must be at least 1")
	case cfg.Files < 1:
		return nil, errors.New("--files must be at least 1")
	case cfg.Duration <= 0:
		return nil, errors.New("--duration must be positive")
	}
	dir, err := os.MkdirTemp(cfg.Dir, "strand-fsync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	lat := newLatencies()
	buf := make([]byte, cfg.WriteSize)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, cfg.Files)
	for i := range cfg.Files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = appendAndSync(ctx, fmt.Sprintf("%s/%d.log", dir, i), buf, lat)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := lat.percentiles()
	return &FsyncResult{Dir: cfg.Dir, WriteSize: cfg.WriteSize, Files: cfg.Files, Syncs: p.Count,
		Seconds: time.Since(start).Seconds(), Latency: p}, nil
}

func appendAndSync(ctx context.Context, path string, buf []byte, lat *latencies) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	for ctx.Err() == nil {
		if _, err := f.Write(buf); err != nil {
			return err
		}
		began := time.Now()
		if err := unix.Fdatasync(fd); err != nil {
			return fmt.Errorf("fdatasync %s: %w", path, err)
		}
		lat.record(time.Since(began))
	}
	return nil
}

// WriteTable writes r for people.
func (r *FsyncResult) WriteTable(w io.Writer) error {
	p := r.Latency
	_, err := fmt.Fprintf(w, "fdatasync after %d-byte appends, %d file(s) in %s: %d syncs in %.1fs\nlatency  p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n",
		r.WriteSize, r.Files, r.Dir, r.Syncs, r.Seconds, p.P50, p.P95, p.P99, p.P999, p.Max)
	return err
}
