package bench

import (
	"context"
	"encoding/binary"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consumers runs Config.Consumers clients over the topic's partitions, split between them
// by hand (no group: a rebalance would be measured as latency). They stop once target
// records have been consumed.
type consumers struct {
	clients []*kgo.Client
	stamped bool // E2E: values carry their send time
	lat     *latencies

	target         atomic.Int64
	consumed       atomic.Int64
	consumedBytes  atomic.Int64
	reached        chan struct{}
	reachedOnce    sync.Once
	reachedAt      atomic.Int64 // unix nanos
	firstFetchedAt atomic.Int64 // unix nanos of the first records seen
}

// spans, when not nil, gets the clients' handoff timings (E2E).
func newConsumers(cfg *Config, from map[int32]int64, stamped bool, spans *clientSpans) (*consumers, error) {
	c := &consumers{stamped: stamped, lat: newLatencies(), reached: make(chan struct{})}
	c.target.Store(math.MaxInt64)
	ids := make([]int32, 0, len(from))
	for id := range from {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	n := min(cfg.Consumers, len(ids))
	for i := range n {
		assigned := map[int32]kgo.Offset{}
		for k := i; k < len(ids); k += n {
			assigned[ids[k]] = kgo.NewOffset().At(from[ids[k]])
		}
		isolation := kgo.ReadUncommitted()
		if cfg.ReadCommitted {
			isolation = kgo.ReadCommitted()
		}
		cl, err := cfg.client(append(spans.consumerOpts(),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: assigned}),
			kgo.FetchIsolationLevel(isolation),
			kgo.FetchMaxPartitionBytes(4<<20),
			kgo.FetchMaxWait(500*time.Millisecond),
		)...)
		if err != nil {
			c.close()
			return nil, err
		}
		c.clients = append(c.clients, cl)
	}
	return c, nil
}

func (c *consumers) close() {
	for _, cl := range c.clients {
		cl.Close()
	}
}

// setTarget sets how many records make the run complete.
func (c *consumers) setTarget(n int64) {
	c.target.Store(n)
	c.check()
}

func (c *consumers) check() {
	if c.consumed.Load() >= c.target.Load() {
		c.reachedOnce.Do(func() {
			c.reachedAt.Store(time.Now().UnixNano())
			close(c.reached)
		})
	}
}

// run polls until the target is reached or ctx ends.
func (c *consumers) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.reached:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for _, cl := range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.poll(ctx, cl)
		}()
	}
	wg.Wait()
}

func (c *consumers) poll(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, 10_000)
		now := time.Now()
		take := c.reserve(int64(fetches.NumRecords()))
		if take == 0 {
			continue
		}
		var bytes int64
		fetches.EachRecord(func(r *kgo.Record) {
			if take == 0 {
				return
			}
			take--
			bytes += int64(len(r.Key) + len(r.Value))
			if c.stamped && len(r.Value) >= stampSize {
				sent := int64(binary.BigEndian.Uint64(r.Value))
				c.lat.record(now.Sub(time.Unix(0, sent)))
			}
		})
		c.firstFetchedAt.CompareAndSwap(0, now.UnixNano())
		c.consumedBytes.Add(bytes)
		c.check()
	}
}

// reserve counts up to n records as consumed, never past the target, and returns how many
// it counted: a run asked for N records reports N, not N and the rest of a fetch.
func (c *consumers) reserve(n int64) int64 {
	for n > 0 {
		cur := c.consumed.Load()
		take := min(n, c.target.Load()-cur)
		if take <= 0 {
			return 0
		}
		if c.consumed.CompareAndSwap(cur, cur+take) {
			return take
		}
	}
	return 0
}
