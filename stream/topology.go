package stream

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Topology is a dataflow graph of sources, processors and sinks, with the state stores the
// processors use. Build it with the DSL or the processor API, then give it to New. Building
// never fails on the spot: the first mistake (a duplicate name, an unknown parent) is kept
// and New returns it, so DSL chains stay chains.
type Topology struct {
	nodes  map[string]*node
	order  []string // insertion order: Describe and task construction are deterministic
	stores map[string]*storeSpec
	seq    int
	err    error
}

type nodeKind int

const (
	sourceNode nodeKind = iota
	processorNode
	sinkNode
)

type node struct {
	name     string
	kind     nodeKind
	parents  []string
	children []string

	// source: topics it reads, or the repartition it reads (resolved with the app id).
	topics      []string
	repartition string
	keyCodec    erased
	valueCodec  erased

	// processor
	newProcessor func() Processor
	stores       []string

	// sink: topic it writes, or the repartition it writes.
	topic string
}

type storeSpec struct {
	name       string
	processors []string
}

// NewTopology returns an empty topology.
func NewTopology() *Topology {
	return &Topology{nodes: map[string]*node{}, stores: map[string]*storeSpec{}}
}

// Err returns the first error made while building the topology (New returns it too).
func (t *Topology) Err() error { return t.err }

func (t *Topology) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// autoName names a stateless node. These names are for Describe and errors only: nothing
// durable (a topic, a store) is derived from them, so numbering them is harmless.
func (t *Topology) autoName(op string) string {
	t.seq++
	return fmt.Sprintf("%s-%d", op, t.seq)
}

func validName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	for _, r := range name {
		if !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			// Store and repartition names become topic names: Kafka's legal characters
			// (org.apache.kafka.common.internals.Topic#validate).
			return fmt.Errorf("name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

func (t *Topology) addNode(n *node) {
	if _, dup := t.nodes[n.name]; dup {
		t.fail(fmt.Errorf("node %q defined twice", n.name))
		return
	}
	for _, p := range n.parents {
		parent, ok := t.nodes[p]
		if !ok {
			t.fail(fmt.Errorf("node %q: unknown parent %q", n.name, p))
			return
		}
		if parent.kind == sinkNode {
			t.fail(fmt.Errorf("node %q: parent %q is a sink", n.name, p))
			return
		}
	}
	if n.kind != sourceNode && len(n.parents) == 0 {
		t.fail(fmt.Errorf("node %q has no parent", n.name))
		return
	}
	for _, p := range n.parents {
		t.nodes[p].children = append(t.nodes[p].children, n.name)
	}
	t.nodes[n.name] = n
	t.order = append(t.order, n.name)
}

// AddSource adds a node that reads topics and decodes their records with the codecs.
func AddSource[K, V any](t *Topology, name string, keyCodec Codec[K], valueCodec Codec[V], topics ...string) {
	if len(topics) == 0 {
		t.fail(fmt.Errorf("source %q: no topics", name))
		return
	}
	t.addNode(&node{name: name, kind: sourceNode, topics: topics, keyCodec: erase(keyCodec), valueCodec: erase(valueCodec)})
}

// AddSink adds a node that encodes records with the codecs and writes them to topic,
// partitioned by Kafka's default partitioner (murmur2 of the key bytes).
func AddSink[K, V any](t *Topology, name, topic string, keyCodec Codec[K], valueCodec Codec[V], parents ...string) {
	t.addNode(&node{name: name, kind: sinkNode, topic: topic, parents: parents, keyCodec: erase(keyCodec), valueCodec: erase(valueCodec)})
}

// AddProcessor adds a processor; newProcessor is called once per task.
func (t *Topology) AddProcessor(name string, newProcessor func() Processor, parents ...string) {
	t.addNode(&node{name: name, kind: processorNode, newProcessor: newProcessor, parents: parents})
}

// AddStore adds a key-value store named name, usable by the given processors. The store
// is changelogged to the compacted topic "<app-id>-<name>-changelog".
func (t *Topology) AddStore(name string, processors ...string) {
	if err := validName(name); err != nil {
		t.fail(fmt.Errorf("store: %w", err))
		return
	}
	if _, dup := t.stores[name]; dup {
		t.fail(fmt.Errorf("store %q defined twice", name))
		return
	}
	t.stores[name] = &storeSpec{name: name}
	for _, p := range processors {
		t.ConnectStore(name, p)
	}
}

// ConnectStore lets processor use store.
func (t *Topology) ConnectStore(store, processor string) {
	s, ok := t.stores[store]
	if !ok {
		t.fail(fmt.Errorf("connect store %q: no such store", store))
		return
	}
	n, ok := t.nodes[processor]
	if !ok || n.kind != processorNode {
		t.fail(fmt.Errorf("connect store %q: no processor %q", store, processor))
		return
	}
	s.processors = append(s.processors, processor)
	n.stores = append(n.stores, store)
}

// subtopology is a connected part of the graph: the nodes a record can reach from its
// source, plus everything that shares a store with them. A task runs one subtopology on one
// partition; a repartition topic is where one subtopology ends and the next begins.
type subtopology struct {
	id     int
	nodes  []string // in topology order
	stores []string // sorted
}

func (t *Topology) subtopologies() []*subtopology {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] == "" || parent[x] == x {
			return x
		}
		root := find(parent[x])
		parent[x] = root
		return root
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra != rb {
			parent[rb] = ra
		}
	}
	for _, name := range t.order {
		for _, c := range t.nodes[name].children {
			union(name, c)
		}
	}
	for _, s := range t.stores {
		for i := 1; i < len(s.processors); i++ {
			union(s.processors[0], s.processors[i])
		}
	}
	byRoot := map[string]*subtopology{}
	var subs []*subtopology
	for _, name := range t.order {
		r := find(name)
		st, ok := byRoot[r]
		if !ok {
			st = &subtopology{id: len(subs)}
			byRoot[r] = st
			subs = append(subs, st)
		}
		st.nodes = append(st.nodes, name)
		for _, s := range t.nodes[name].stores {
			if !contains(st.stores, s) {
				st.stores = append(st.stores, s)
			}
		}
	}
	for _, st := range subs {
		sort.Strings(st.stores)
	}
	return subs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// RepartitionTopic is the topic a repartition named name uses in application appID.
func RepartitionTopic(appID, name string) string { return appID + "-" + name + "-repartition" }

// ChangelogTopic is the compacted topic that backs store in application appID.
func ChangelogTopic(appID, store string) string { return appID + "-" + store + "-changelog" }

// sourceTopics are the topics a source node reads in application appID.
func (n *node) sourceTopics(appID string) []string {
	if n.repartition != "" {
		return []string{RepartitionTopic(appID, n.repartition)}
	}
	return n.topics
}

func (n *node) sinkTopic(appID string) string {
	if n.repartition != "" {
		return RepartitionTopic(appID, n.repartition)
	}
	return n.topic
}

func (n *node) describeTopics() string {
	if n.repartition != "" {
		return n.repartition + "-repartition"
	}
	if n.kind == sinkNode {
		return n.topic
	}
	return strings.Join(n.topics, ", ")
}
