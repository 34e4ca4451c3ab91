package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// View is what one node answered, at one moment, about who leads a partition: its leader,
// leader epoch and ISR. Views are a diagnostic, not a check: during a leader change two
// nodes may briefly disagree, but when writes are lost the views around that moment show
// which nodes believed what.
type View struct {
	Node      int32
	At        time.Time
	Partition int32
	Leader    int32
	Epoch     int32
	ISR       []int32
}

func (v View) String() string {
	return fmt.Sprintf("%s node %d says p%d leader %d epoch %d isr %v", v.At.Format("15:04:05.000"), v.Node, v.Partition, v.Leader, v.Epoch, v.ISR)
}

// viewWatcher asks every node directly (from before the topic is created) (each through a client seeded with that node only)
// for the topic's metadata every interval, and records each change of a node's answer.
type viewWatcher struct {
	h      *History
	topic  string
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func watchViews(c *Cluster, h *History, topic string, every time.Duration) *viewWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &viewWatcher{h: h, topic: topic, cancel: cancel}
	for _, n := range c.Nodes {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.DialTimeout(500*time.Millisecond))
		if err != nil {
			continue
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cl.Close()
			w.watch(ctx, n.ID, cl, every)
		}()
	}
	return w
}

func (w *viewWatcher) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *viewWatcher) watch(ctx context.Context, node int32, cl *kgo.Client, every time.Duration) {
	last := map[int32]View{}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seeds := cl.SeedBrokers()
		if len(seeds) == 0 {
			continue
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(w.topic)
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = false // the watcher starts before the topic exists
		reqCtx, cancel := context.WithTimeout(ctx, every*3)
		raw, err := seeds[0].Request(reqCtx, req)
		cancel()
		if err != nil {
			continue
		}
		resp := raw.(*kmsg.MetadataResponse)
		now := time.Now()
		for _, t := range resp.Topics {
			if t.Topic == nil || *t.Topic != w.topic || t.ErrorCode != 0 {
				continue
			}
			for _, p := range t.Partitions {
				v := View{Node: node, At: now, Partition: p.Partition, Leader: p.Leader, Epoch: p.LeaderEpoch, ISR: slices.Clone(p.ISR)}
				slices.Sort(v.ISR)
				if prev, ok := last[p.Partition]; ok && prev.Leader == v.Leader && prev.Epoch == v.Epoch && slices.Equal(prev.ISR, v.ISR) {
					continue
				}
				last[p.Partition] = v
				w.h.mu.Lock()
				w.h.Views = append(w.h.Views, v)
				w.h.mu.Unlock()
			}
		}
	}
}

// ViewsAround lists the recorded views of partition from before until after t: what each
// node believed about it around an anomaly. The last view of each node before the window
// is included, since it still held at the window's start.
func ViewsAround(h *History, partition int32, t time.Time, before, after time.Duration) string {
	from, to := t.Add(-before), t.Add(after)
	var out []string
	latest := map[int32]View{}
	for _, v := range h.Views {
		if v.Partition != partition {
			continue
		}
		if v.At.Before(from) {
			latest[v.Node] = v
			continue
		}
		if v.At.After(to) {
			continue
		}
		out = append(out, "  "+v.String())
	}
	var held []string
	for _, v := range latest {
		held = append(held, "  "+v.String()+" (held at window start)")
	}
	slices.Sort(held)
	return strings.Join(append(held, out...), "\n")
}
