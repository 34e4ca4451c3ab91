package cluster

import (
	"cmp"
	"errors"
	"maps"
	"slices"

	"github.com/strand-data/strand/internal/auth"
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
	// ErrMetadataStorage is a metadata write this node's store cannot take now: a write
	// failed, or the disk is full and the store is keeping its reserve for raft.
	ErrMetadataStorage = errors.New("the metadata log cannot be written")
	// ErrLeadershipLost is a proposal whose raft leader lost leadership before it committed;
	// the command may still commit under the next leader, so it is not retried.
	ErrLeadershipLost = errors.New("metadata leadership lost while committing")
	ErrInvalidRequest = errors.New("invalid request")
	// ErrStaleLeaderEpoch refuses an AlterPartition from a replica that is not the current
	// leader, or is the leader of an older epoch.
	ErrStaleLeaderEpoch = errors.New("not the current partition leader or stale leader epoch")
	// ErrStalePartitionEpoch refuses an AlterPartition built on an older partition state.
	ErrStalePartitionEpoch = errors.New("stale partition epoch")
	// ErrIneligibleReplica refuses an ISR with a replica that cannot be in it.
	ErrIneligibleReplica = errors.New("ineligible replica")
	// ErrUnknownBroker is a broker id that is not registered.
	ErrUnknownBroker = errors.New("unknown broker")
	// ErrNoReassignment cancels a reassignment that is not in progress.
	ErrNoReassignment = errors.New("no reassignment in progress")
)

// State is an immutable snapshot of the cluster metadata. Never mutate one: the FSM builds
// a new State for every change.
type State struct {
	ClusterID     string
	ControllerID  int32
	Brokers       map[int32]Broker
	Topics        map[string]*Topic
	BrokerConfigs map[string]string
	// Groups holds each group's own configs (group config resources), by group id.
	Groups map[string]map[string]string `json:",omitempty"`
	// ScramUsers holds SCRAM credentials by user and mechanism (scram.go); snapshots from
	// before it load with none.
	ScramUsers     map[string]map[auth.ScramMechanism]auth.ScramCredential `json:",omitempty"`
	NextProducerID int64
	Version        uint64 // raft index of the last applied command
}

// Broker is a registered broker.
type Broker struct {
	ID       int32
	Host     string
	Port     int32
	Rack     string
	HTTPAddr string `json:",omitempty"` // where the node's HTTP listener (and metadata forwarding) answers
	// Fenced brokers stopped heartbeating: they lead nothing and are in no ISR of more than one.
	Fenced bool
	// ShuttingDown brokers asked for a controlled shutdown: leadership moved away from them.
	ShuttingDown bool `json:",omitempty"`
}

// Live reports whether the broker may lead partitions and hold new replicas.
func (b Broker) Live() bool { return !b.Fenced && !b.ShuttingDown }

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
	// AddingReplicas and RemovingReplicas are set while a reassignment is in progress:
	// Replicas is then the union of the old and the target replica sets.
	AddingReplicas   []int32 `json:",omitempty"`
	RemovingReplicas []int32 `json:",omitempty"`
	// Recovering replicas reported their copy damaged (issue 8): they are out of the ISR
	// and no election picks them until their leader adds them back to the ISR.
	Recovering []int32 `json:",omitempty"`
}

// Offline reports a partition without a leader.
func (p Partition) Offline() bool { return p.Leader < 0 }

// UnderReplicated reports a partition whose ISR is smaller than its replica set.
func (p Partition) UnderReplicated() bool { return len(p.ISR) < len(p.Replicas) }

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

// LiveBrokers are the registered brokers that are neither fenced nor shutting down,
// ordered by id.
func (s *State) LiveBrokers() []Broker {
	var out []Broker
	for _, b := range s.Brokers {
		if b.Live() {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Broker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// live reports whether broker id is registered and live.
func (s *State) live(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && b.Live()
}
