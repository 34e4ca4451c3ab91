package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ensureTopic creates the topic with the configured partitions and replication factor
// unless it exists, and returns how many partitions it has.
func ensureTopic(ctx context.Context, adm *kadm.Client, c *Config) (int32, error) {
	resp, err := adm.CreateTopic(ctx, c.Partitions, c.ReplicationFactor, nil, c.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %s: %w", c.Topic, err)
	}
	// A new topic's leaders may take a moment to appear in metadata.
	deadline := time.Now().Add(30 * time.Second)
	for {
		offsets, err := listOffsets(ctx, adm, c.Topic, false)
		if err == nil && len(offsets) > 0 {
			return int32(len(offsets)), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no partitions")
			}
			return 0, fmt.Errorf("topic %s not ready: %w", c.Topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listOffsets returns every partition's start (or end) offset, failing if any partition
// has no answer.
func listOffsets(ctx context.Context, adm *kadm.Client, topic string, end bool) (map[int32]int64, error) {
	var listed kadm.ListedOffsets
	var err error
	if end {
		listed, err = adm.ListEndOffsets(ctx, topic)
	} else {
		listed, err = adm.ListStartOffsets(ctx, topic)
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	var perr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = fmt.Errorf("partition %d: %w", o.Partition, o.Err)
			return
		}
		out[o.Partition] = o.Offset
	})
	if perr != nil {
		return nil, perr
	}
	return out, nil
}
