package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// e2eDrainTimeout bounds how long an E2E run waits, after the producers finish, for the
// consumers to see every acknowledged record.
const e2eDrainTimeout = 30 * time.Second

// Run runs one workload and returns what it measured. Progress lines go to cfg.Progress.
func Run(ctx context.Context, mode Mode, cfg Config) (*Result, error) {
	if err := cfg.validate(mode); err != nil {
		return nil, err
	}
	admCl, err := cfg.client()
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	setupCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res := &Result{Mode: mode, Topic: cfg.Topic, RecordSize: cfg.RecordSize, OfferedRate: cfg.Rate}
	switch mode {
	case Produce:
		if res.Partitions, err = ensureTopic(setupCtx, adm, &cfg); err != nil {
			return nil, err
		}
		return res, runProduce(ctx, &cfg, res)
	case Consume:
		from, err := listOffsets(setupCtx, adm, cfg.Topic, false)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", cfg.Topic, err)
		}
		end, err := listOffsets(setupCtx, adm, cfg.Topic, true)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", cfg.Topic, err)
		}
		res.Partitions = int32(len(from))
		return res, runConsume(ctx, &cfg, res, from, end)
	default:
		if res.Partitions, err = ensureTopic(setupCtx, adm, &cfg); err != nil {
			return nil, err
		}
		// Consumers start at today's end, resolved before anything is produced, so they see
		// exactly this run's records.
		from, err := listOffsets(setupCtx, adm, cfg.Topic, true)
		if err != nil {
			return nil, err
		}
		return res, runE2E(ctx, &cfg, res, from)
	}
}

// bounded returns ctx ended after cfg.Duration, if set.
func bounded(ctx context.Context, cfg *Config) (context.Context, context.CancelFunc) {
	if cfg.Duration > 0 {
		return context.WithTimeout(ctx, cfg.Duration)
	}
	return context.WithCancel(ctx)
}

func runProduce(ctx context.Context, cfg *Config, res *Result) error {
	p, err := newProducers(cfg, false, nil)
	if err != nil {
		return err
	}
	defer p.close()
	runCtx, cancel := bounded(ctx, cfg)
	defer cancel()
	start := time.Now()
	rate := newRateMeter()
	stopProgress := progress(cfg, start, func(w io.Writer, elapsed time.Duration) {
		acked := p.acked.Load()
		records, mb := rate.since(acked, p.ackedBytes.Load())
		fmt.Fprintf(w, "%6.1fs  sent %d  acked %d  %.0f records/s  %.1f MB/s  errors %d\n", elapsed.Seconds(),
			p.sent.Load(), acked, records, mb, p.failed.Load())
	})
	p.run(ctx, runCtx, start)
	stopProgress()
	end := time.Now()
	if last := p.lastAck.Load(); last > 0 {
		end = time.Unix(0, last)
	}
	res.Sent, res.Acked, res.Errors, res.FirstError = p.sent.Load(), p.acked.Load(), p.failed.Load(), p.firstError()
	res.Records, res.Bytes = res.Acked, p.ackedBytes.Load()
	res.Latency = p.lat.percentiles()
	if res.Transactions = p.txns.Load(); res.Transactions > 0 {
		res.EndTxnLatency = p.endTxn.percentiles()
	}
	finish(res, end.Sub(start))
	return ctx.Err()
}

func runConsume(ctx context.Context, cfg *Config, res *Result, from, end map[int32]int64) error {
	var available int64
	for id, start := range from {
		available += max(0, end[id]-start)
	}
	c, err := newConsumers(cfg, from, false, nil)
	if err != nil {
		return err
	}
	defer c.close()
	switch {
	case cfg.Records > 0 && available < cfg.Records && cfg.Duration <= 0:
		return fmt.Errorf("topic %s holds %d records, fewer than --records %d: produce first, or bound the run with --duration", cfg.Topic, available, cfg.Records)
	case cfg.Records > 0:
		c.setTarget(cfg.Records)
	}
	runCtx, cancel := bounded(ctx, cfg)
	defer cancel()
	start := time.Now()
	rate := newRateMeter()
	stopProgress := progress(cfg, start, func(w io.Writer, elapsed time.Duration) {
		n := c.consumed.Load()
		records, mb := rate.since(n, c.consumedBytes.Load())
		fmt.Fprintf(w, "%6.1fs  consumed %d  %.0f records/s  %.1f MB/s\n", elapsed.Seconds(), n, records, mb)
	})
	c.run(runCtx)
	stopProgress()
	stop := time.Now()
	if at := c.reachedAt.Load(); at > 0 {
		stop = time.Unix(0, at)
	}
	res.Records, res.Bytes = c.consumed.Load(), c.consumedBytes.Load()
	if res.Records > 0 {
		res.RecordSize = int(res.Bytes / res.Records)
	}
	finish(res, stop.Sub(start))
	return ctx.Err()
}

func runE2E(ctx context.Context, cfg *Config, res *Result, from map[int32]int64) error {
	spans := newClientSpans()
	c, err := newConsumers(cfg, from, true, spans)
	if err != nil {
		return err
	}
	defer c.close()
	p, err := newProducers(cfg, true, spans)
	if err != nil {
		return err
	}
	defer p.close()
	consumeCtx, cancelConsume := context.WithCancel(ctx)
	defer cancelConsume()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		c.run(consumeCtx)
	}()
	var before metricsSnapshot
	if len(cfg.MetricsAddrs) > 0 {
		if before, err = scrapeHistograms(ctx, cfg.MetricsAddrs); err != nil {
			return err
		}
	}
	runCtx, cancel := bounded(ctx, cfg)
	defer cancel()
	start := time.Now()
	rate := newRateMeter()
	stopProgress := progress(cfg, start, func(w io.Writer, elapsed time.Duration) {
		n := c.consumed.Load()
		records, mb := rate.since(n, c.consumedBytes.Load())
		fmt.Fprintf(w, "%6.1fs  sent %d  acked %d  consumed %d  %.0f records/s  %.1f MB/s  errors %d\n", elapsed.Seconds(),
			p.sent.Load(), p.acked.Load(), n, records, mb, p.failed.Load())
	})
	defer stopProgress()
	p.run(ctx, runCtx, start)
	// Everything acknowledged must reach the consumers; wait for it, within reason.
	c.setTarget(p.acked.Load())
	var drainErr error
	select {
	case <-consumed:
	case <-time.After(e2eDrainTimeout):
		drainErr = fmt.Errorf("consumers saw %d of %d acknowledged records within %s", c.consumed.Load(), p.acked.Load(), e2eDrainTimeout)
	case <-ctx.Done():
	}
	cancelConsume()
	<-consumed
	stopProgress()
	stop := time.Now()
	if at := c.reachedAt.Load(); at > 0 {
		stop = time.Unix(0, at)
	}
	res.Sent, res.Acked, res.Errors, res.FirstError = p.sent.Load(), p.acked.Load(), p.failed.Load(), p.firstError()
	res.Records, res.Bytes = c.consumed.Load(), c.consumedBytes.Load()
	res.Latency, res.AckLatency = c.lat.percentiles(), p.lat.percentiles()
	if res.Transactions = p.txns.Load(); res.Transactions > 0 {
		res.EndTxnLatency = p.endTxn.percentiles()
	}
	res.Breakdown = append(res.Breakdown, clientStage("produce request round trip", spans.roundTrip))
	if len(cfg.MetricsAddrs) > 0 {
		after, err := scrapeHistograms(ctx, cfg.MetricsAddrs)
		if err != nil {
			return err
		}
		res.Breakdown = append(res.Breakdown, serverBreakdown(after.since(before))...)
	} else {
		res.BreakdownNote = "server stages need the brokers' HTTP addresses (--http)"
	}
	res.Breakdown = append(res.Breakdown, clientStage("fetched → polled by the consumer", spans.handoff))
	finish(res, stop.Sub(start))
	return errors.Join(drainErr, ctx.Err())
}

func finish(res *Result, elapsed time.Duration) {
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.RecordsPerSec = float64(res.Records) / res.Seconds
		res.BytesPerSec = float64(res.Bytes) / res.Seconds
		res.MBPerSec = res.BytesPerSec / 1e6
	}
}

// progress calls line every ProgressInterval until the returned stop is called (which is
// safe to call more than once).
func progress(cfg *Config, start time.Time, line func(w io.Writer, elapsed time.Duration)) func() {
	if cfg.Progress == nil || cfg.ProgressInterval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				line(cfg.Progress, time.Since(start))
			}
		}
	}()
	var closed bool
	return func() {
		if !closed {
			closed = true
			close(done)
			<-stopped
		}
	}
}

// rateMeter turns running totals into rates over the last progress interval.
type rateMeter struct {
	at             time.Time
	records, bytes int64
}

func newRateMeter() *rateMeter { return &rateMeter{at: time.Now()} }

// since returns records/s and MB/s since the previous call.
func (m *rateMeter) since(records, bytes int64) (float64, float64) {
	now := time.Now()
	secs := now.Sub(m.at).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	r, b := float64(records-m.records)/secs, float64(bytes-m.bytes)/secs/1e6
	m.at, m.records, m.bytes = now, records, bytes
	return r, b
}
