package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Workload is a set of idempotent acks=all producers writing unique values (producer id and
// sequence) round-robin over a topic's partitions at a steady pace, and one consumer
// reading every partition from the start, all recorded in History.
type Workload struct {
	Topic      string
	Partitions int32
	History    *History

	c         *Cluster
	cancel    context.CancelFunc
	producers []*kgo.Client
	consumer  *kgo.Client
	loops     sync.WaitGroup // producer and consumer loops
	inflight  sync.WaitGroup // produce callbacks still to come
	dataLoss  atomic.Int64
}

// WorkloadOptions shape the load.
type WorkloadOptions struct {
	Producers int           // default 2
	Interval  time.Duration // between two records of one producer; default 2ms
	History   *History      // where to record; default a new one
}

// StartWorkload starts the producers and the consumer; Stop ends them.
func StartWorkload(t testing.TB, c *Cluster, topic string, partitions int32, opts WorkloadOptions) *Workload {
	t.Helper()
	if opts.Producers == 0 {
		opts.Producers = 2
	}
	if opts.Interval == 0 {
		opts.Interval = 2 * time.Millisecond
	}
	// Produce gets its own context, never cancelled at Stop: kgo fails a buffered record
	// whose context ends, and Stop must give buffered records their chance.
	produceCtx, cancelProduce := context.WithCancel(context.Background())
	t.Cleanup(cancelProduce)
	ctx, cancel := context.WithCancel(context.Background())
	if opts.History == nil {
		opts.History = &History{}
	}
	w := &Workload{Topic: topic, Partitions: partitions, History: opts.History, c: c, cancel: cancel}
	t.Cleanup(cancel)
	// Short request timeouts: a produce stuck on a connection to a node that was cut off
	// or paused would otherwise hold its partition for the client's default 10s+ after
	// the cluster has already moved the leader, and the outage measured would be kgo's.
	for i := 0; i < opts.Producers; i++ {
		cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30), kgo.RecordDeliveryTimeout(20*time.Second),
			kgo.ProduceRequestTimeout(2*time.Second), kgo.RequestTimeoutOverhead(time.Second), kgo.ProducerLinger(2*time.Millisecond),
			kgo.MaxBufferedRecords(1<<20))
		w.producers = append(w.producers, cl)
		w.loops.Add(1)
		go w.produce(ctx, produceCtx, i, cl, opts.Interval)
	}
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	w.consumer = c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	w.loops.Add(1)
	go w.consume(ctx)
	return w
}

func (w *Workload) produce(ctx, produceCtx context.Context, producer int, cl *kgo.Client, interval time.Duration) {
	defer w.loops.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := int64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		partition := int32(seq % int64(w.Partitions))
		start := time.Now()
		w.inflight.Add(1)
		cl.Produce(produceCtx, &kgo.Record{Partition: partition, Value: []byte(RecordValue(producer, seq))}, func(r *kgo.Record, err error) {
			defer w.inflight.Done()
			p := Produce{Producer: producer, Seq: seq, Partition: partition, Offset: -1, Start: start, End: time.Now()}
			if err != nil {
				p.Err = err.Error()
			} else {
				p.Partition, p.Offset = r.Partition, r.Offset
			}
			w.History.AddProduce(p)
		})
	}
}

func (w *Workload) consume(ctx context.Context) {
	defer w.loops.Done()
	for ctx.Err() == nil {
		fetches := w.consumer.PollFetches(ctx)
		now := time.Now()
		fetches.EachError(func(_ string, _ int32, err error) {
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				w.dataLoss.Add(1)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			w.History.AddRead(Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value), At: now})
		})
	}
}

// SampleProducerIDs records in History the idempotent producer id and epoch the cluster
// gave each producer, as the clients hold them now.
func (w *Workload) SampleProducerIDs(ctx context.Context) []ProducerID {
	var out []ProducerID
	for i, cl := range w.producers {
		id, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			continue
		}
		out = append(out, ProducerID{Producer: i, ID: id, Epoch: epoch, At: time.Now()})
	}
	w.History.mu.Lock()
	w.History.ProducerIDs = append(w.History.ProducerIDs, out...)
	w.History.mu.Unlock()
	return out
}

// DataLossEvents counts the times the consumer's client reported that the log it was
// reading was truncated below the offset it had reached (kgo.ErrDataLoss).
func (w *Workload) DataLossEvents() int64 { return w.dataLoss.Load() }

// Stop stops producing, gives what is buffered up to flush to be acknowledged, fails the
// rest, and stops the consumer.
func (w *Workload) Stop(flush time.Duration) {
	w.History.mu.Lock()
	w.History.End = time.Now()
	w.History.mu.Unlock()
	w.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), flush)
	defer cancel()
	for _, cl := range w.producers {
		cl.Flush(ctx)
	}
	for _, cl := range w.producers {
		cl.Close() // fails what is still buffered; those were never acknowledged
	}
	w.loops.Wait()
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}

// AckedSince says whether every partition has acknowledged a write begun at or after t.
func (w *Workload) AckedSince(t time.Time) bool {
	h := w.History
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[int32]bool{}
	for i := len(h.Produces) - 1; i >= 0; i-- {
		p := h.Produces[i]
		if p.Acked() && !p.Start.Before(t) {
			seen[p.Partition] = true
		}
	}
	return len(seen) == int(w.Partitions)
}

// FinalRead reads every partition from the start up to the end offsets the cluster reports
// (the high watermarks) into History.Final, bounded by limit.
func (w *Workload) FinalRead(t testing.TB, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	adm := kadm.NewClient(w.c.Client(t))
	var ends map[int32]int64
	for ends == nil {
		listed, err := adm.ListEndOffsets(ctx, w.Topic)
		if err == nil && listed.Error() == nil {
			ends = map[int32]int64{}
			listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("list end offsets: %v %v", err, listed.Error())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(ends) != int(w.Partitions) {
		return fmt.Errorf("end offsets of %d partitions, want %d", len(ends), w.Partitions)
	}
	offsets := map[int32]kgo.Offset{}
	for p := range ends {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := w.c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.Topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	next := map[int32]int64{}
	var final []Read
	complete := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !complete() && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		now := time.Now()
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return // written after the end offsets were taken: not part of this read
			}
			final = append(final, Read{Partition: r.Partition, Offset: r.Offset, Value: string(r.Value), At: now})
			if r.Offset+1 > next[r.Partition] {
				next[r.Partition] = r.Offset + 1
			}
		})
	}
	h := w.History
	h.mu.Lock()
	h.Final, h.FinalEnds = final, ends
	h.mu.Unlock()
	if !complete() {
		return fmt.Errorf("final read incomplete after %v: reached %v of %v", limit, next, ends)
	}
	return nil
}
