package cluster

import (
	"errors"
	"maps"
)

// Errors the broker maps to Kafka error codes; they are wrapped with detail.
var (
	ErrTopicExists              = errors.New("topic already exists")
	ErrUnknownTopic             = errors.New("unknown topic")
	ErrInvalidTopic             = errors.New("invalid topic")
	ErrInvalidPartitions        = errors.New("invalid partitions")
	ErrInvalidReplicationFactor = errors.New("invalid replication factor")
	ErrInvalidConfig            = errors.New("invalid config")
	ErrNotController            = errors.New("not the controller")
	ErrInvalidRequest           = errors.New("invalid request")
)

// State is an immutable snapshot of the cluster metadata. Never mutate one: the FSM builds
// a new State for every change.
type State struct {
	ClusterID      string
	ControllerID   int32
	Brokers        map[int32]Broker
	Topics         map[string]*Topic
	BrokerConfigs  map[string]string
	NextProducerID int64
	Version        uint64 // raft index of the last applied command
}

// Broker is a registered broker.
type Broker struct {
	ID     int32
	Host   string
	Port   int32
	Rack   string
	Fenced bool
}

// Topic is a topic and its partitions. Immutable like State.
type Topic struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Partitions []Partition // index = partition id
	Configs    map[string]string
}

// Partition is one partition's replica placement and leadership.
type Partition struct {
	ID             int32
	Leader         int32
	LeaderEpoch    int32
	Replicas       []int32
	ISR            []int32
	PartitionEpoch int32
}

func emptyState() *State {
	return &State{Brokers: map[int32]Broker{}, Topics: map[string]*Topic{}, BrokerConfigs: map[string]string{}, ControllerID: -1}
}

// clone copies the top level; topics are replaced, never edited, so sharing them is safe.
func (s *State) clone() *State {
	c := *s
	c.Brokers = maps.Clone(s.Brokers)
	c.Topics = maps.Clone(s.Topics)
	c.BrokerConfigs = maps.Clone(s.BrokerConfigs)
	return &c
}

func (t *Topic) clone() *Topic {
	c := *t
	c.Partitions = append([]Partition(nil), t.Partitions...)
	c.Configs = maps.Clone(t.Configs)
	return &c
}

// TopicByID finds a topic by its id.
func (s *State) TopicByID(id [16]byte) (*Topic, bool) {
	for _, t := range s.Topics {
		if t.ID == id {
			return t, true
		}
	}
	return nil, false
}

// LiveBrokers are the registered, unfenced brokers.
func (s *State) LiveBrokers() []Broker {
	var out []Broker
	for _, b := range s.Brokers {
		if !b.Fenced {
			out = append(out, b)
		}
	}
	return out
}
