package stream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrCoPartitioning is wrapped by the error New or Run return when the topics one task reads
// do not have the same number of partitions: partition p of each must hold the same keys,
// which murmur2 guarantees only for equal counts.
var ErrCoPartitioning = errors.New("topics are not co-partitioned")

// ErrMissingTopic is wrapped by the error Run returns when an input topic does not exist.
var ErrMissingTopic = errors.New("input topic does not exist")

// layout is what Run derives from the topology and the cluster: the partition count of each
// subtopology (its task count) and of each internal topic.
type layout struct {
	subPartitions map[int]int32    // subtopology id → partitions (tasks)
	internal      map[string]int32 // repartition and changelog topic → partitions
	changelogs    map[string]bool
	repartitions  map[string]bool
}

// planLayout checks co-partitioning and sizes the internal topics. existing holds the
// partition counts of the topics that exist (input topics must; internal ones may). A
// subtopology reading input topics has their common count; one reading only repartition
// topics has the largest count among the subtopologies that write them, as Kafka Streams'
// RepartitionTopics#computeNumberOfPartitions sizes them.
func planLayout(t *Topology, appID string, subs []*subtopology, existing map[string]int32) (*layout, error) {
	l := &layout{subPartitions: map[int]int32{}, internal: map[string]int32{}, changelogs: map[string]bool{}, repartitions: map[string]bool{}}
	writers := map[string][]int{} // repartition topic → writing subtopologies
	for _, st := range subs {
		for _, name := range st.nodes {
			if n := t.nodes[name]; n.kind == sinkNode && n.repartition != "" {
				topic := n.sinkTopic(appID)
				writers[topic] = append(writers[topic], st.id)
				l.repartitions[topic] = true
			}
		}
	}
	// Subtopologies are numbered in the order their first node was added, and a repartition
	// source is added after its sink, so writers come before readers.
	for _, st := range subs {
		var inputs, internalInputs []string
		for _, name := range st.nodes {
			n := t.nodes[name]
			if n.kind != sourceNode {
				continue
			}
			if n.repartition != "" {
				internalInputs = append(internalInputs, n.sourceTopics(appID)...)
			} else {
				inputs = append(inputs, n.topics...)
			}
		}
		var count int32
		var counts []string
		for _, topic := range inputs {
			c, ok := existing[topic]
			if !ok {
				return nil, fmt.Errorf("%w: %s (sub-topology %d reads it)", ErrMissingTopic, topic, st.id)
			}
			counts = append(counts, fmt.Sprintf("%s: %d", topic, c))
			if count == 0 {
				count = c
			} else if c != count {
				return nil, copartitionError(st.id, counts, inputs[len(counts):], existing)
			}
		}
		if count == 0 {
			for _, topic := range internalInputs {
				for _, w := range writers[topic] {
					count = max(count, l.subPartitions[w])
				}
			}
		}
		for _, topic := range internalInputs {
			if c, ok := existing[topic]; ok && c != count {
				return nil, fmt.Errorf("%w: sub-topology %d has %d partitions but its repartition topic %s has %d; delete the topic or give the repartition a new name",
					ErrCoPartitioning, st.id, count, topic, c)
			}
			l.internal[topic] = count
		}
		l.subPartitions[st.id] = count
		for _, s := range st.stores {
			topic := ChangelogTopic(appID, s)
			if c, ok := existing[topic]; ok && c != count {
				return nil, fmt.Errorf("%w: store %s belongs to tasks of %d partitions but its changelog %s has %d",
					ErrCoPartitioning, s, count, topic, c)
			}
			l.internal[topic] = count
			l.changelogs[topic] = true
		}
	}
	return l, nil
}

func copartitionError(sub int, counts, rest []string, existing map[string]int32) error {
	for _, topic := range rest {
		if c, ok := existing[topic]; ok {
			counts = append(counts, fmt.Sprintf("%s: %d", topic, c))
		}
	}
	return fmt.Errorf("%w: sub-topology %d reads topics with different partition counts (%s); they must be equal",
		ErrCoPartitioning, sub, strings.Join(counts, ", "))
}

// topicCounts returns the partition counts of the topics that exist among names.
func topicCounts(ctx context.Context, adm *kadm.Client, names []string) (map[string]int32, error) {
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	counts := map[string]int32{}
	for name, d := range details {
		if errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if d.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", name, d.Err)
		}
		counts[name] = int32(len(d.Partitions))
	}
	return counts, nil
}

// createInternalTopics creates the repartition and changelog topics that are missing.
// Changelogs are compacted (their latest value per key is the store); repartition topics
// keep the broker's delete policy, as Kafka Streams' RepartitionTopicConfig does.
func createInternalTopics(ctx context.Context, adm *kadm.Client, l *layout, existing map[string]int32, replication int16) error {
	names := make([]string, 0, len(l.internal))
	for topic := range l.internal {
		if _, ok := existing[topic]; !ok {
			names = append(names, topic)
		}
	}
	sort.Strings(names)
	for _, topic := range names {
		var configs map[string]*string
		if l.changelogs[topic] {
			configs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
		}
		resp, err := adm.CreateTopic(ctx, l.internal[topic], replication, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create internal topic %s: %w", topic, err)
		}
	}
	return nil
}

// EnsureTopic creates topic with partitions and configs unless it exists; programs use it
// for their own input and output topics (the examples do).
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, -1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
