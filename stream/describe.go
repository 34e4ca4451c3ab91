package stream

import (
	"fmt"
	"strings"
)

// Description is a topology's shape: its subtopologies, nodes, edges, stores and topics.
type Description struct {
	t    *Topology
	subs []*subtopology
}

// Describe returns the topology's description. Repartition topics show without the
// application prefix (as Kafka Streams' Topology#describe shows them), since the topology
// does not know the application id.
func (t *Topology) Describe() *Description {
	return &Description{t: t, subs: t.subtopologies()}
}

// String is the text form, laid out like Kafka Streams' TopologyDescription#toString so
// people who read one can read the other.
func (d *Description) String() string {
	var b strings.Builder
	b.WriteString("Topologies:\n")
	for _, st := range d.subs {
		fmt.Fprintf(&b, "   Sub-topology: %d\n", st.id)
		for _, name := range st.nodes {
			n := d.t.nodes[name]
			switch n.kind {
			case sourceNode:
				fmt.Fprintf(&b, "    Source: %s (topics: [%s])\n", n.name, n.describeTopics())
			case processorNode:
				fmt.Fprintf(&b, "    Processor: %s (stores: [%s])\n", n.name, strings.Join(n.stores, ", "))
			case sinkNode:
				fmt.Fprintf(&b, "    Sink: %s (topic: %s)\n", n.name, n.describeTopics())
			}
			if len(n.children) > 0 {
				fmt.Fprintf(&b, "      --> %s\n", strings.Join(n.children, ", "))
			} else if n.kind != sinkNode {
				b.WriteString("      --> none\n")
			}
			if len(n.parents) > 0 {
				fmt.Fprintf(&b, "      <-- %s\n", strings.Join(n.parents, ", "))
			}
		}
	}
	return b.String()
}

// DOT is the Graphviz form: one cluster per subtopology, topics as ellipses, stores as
// cylinders, nodes as boxes.
func (d *Description) DOT() string {
	var b strings.Builder
	b.WriteString("digraph topology {\n  rankdir=LR;\n  node [shape=box];\n")
	topics := map[string]bool{}
	for _, st := range d.subs {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%q;\n", st.id, fmt.Sprintf("sub-topology %d", st.id))
		for _, name := range st.nodes {
			fmt.Fprintf(&b, "    %q;\n", name)
		}
		b.WriteString("  }\n")
		for _, name := range st.nodes {
			n := d.t.nodes[name]
			for _, c := range n.children {
				fmt.Fprintf(&b, "  %q -> %q;\n", name, c)
			}
			switch n.kind {
			case sourceNode:
				for _, topic := range strings.Split(n.describeTopics(), ", ") {
					topics[topic] = true
					fmt.Fprintf(&b, "  %q -> %q;\n", "topic:"+topic, name)
				}
			case sinkNode:
				topics[n.describeTopics()] = true
				fmt.Fprintf(&b, "  %q -> %q;\n", name, "topic:"+n.describeTopics())
			case processorNode:
				for _, s := range n.stores {
					fmt.Fprintf(&b, "  %q -> %q [dir=both];\n", name, "store:"+s)
				}
			}
		}
	}
	for _, name := range d.t.order {
		for _, s := range d.t.nodes[name].stores {
			if topics["\x00store:"+s] {
				continue
			}
			topics["\x00store:"+s] = true
			fmt.Fprintf(&b, "  %q [shape=cylinder, label=%q];\n", "store:"+s, s)
		}
	}
	for _, name := range d.t.order {
		n := d.t.nodes[name]
		if n.kind == processorNode {
			continue
		}
		for _, topic := range strings.Split(n.describeTopics(), ", ") {
			if topics[topic] {
				delete(topics, topic)
				fmt.Fprintf(&b, "  %q [shape=ellipse, label=%q];\n", "topic:"+topic, topic)
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}
