package journal

import (
	"context"
	"sync"
	"time"
)

// Throttle bounds the cleaner's I/O to a rate in bytes per second
// (log.cleaner.io.max.bytes.per.second), with a burst of one second's worth. A nil
// Throttle does not limit.
type Throttle struct {
	rate float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewThrottle limits to bytesPerSecond; zero or less means no limit (nil).
func NewThrottle(bytesPerSecond int64) *Throttle {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &Throttle{rate: float64(bytesPerSecond), tokens: float64(bytesPerSecond), last: time.Now()}
}

// Wait takes n bytes from the budget, sleeping until the budget allows them.
func (t *Throttle) Wait(ctx context.Context, n int64) error {
	if t == nil || n <= 0 {
		return ctx.Err()
	}
	t.mu.Lock()
	now := time.Now()
	t.tokens = min(t.rate, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	t.last = now
	t.tokens -= float64(n)
	deficit := -t.tokens
	t.mu.Unlock()
	if deficit <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(time.Duration(deficit / t.rate * float64(time.Second)))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
