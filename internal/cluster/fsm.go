package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// command is one entry of the metadata log.
type command struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type (
	cmdInitCluster    struct{ ClusterID string }
	cmdRegisterBroker struct {
		Broker   Broker
		LeaveISR bool `json:",omitempty"`
	}
	// cmdCreateTopic carries either placed Partitions (older logs) or Count and
	// ReplicationFactor, and then Apply places the replicas.
	cmdCreateTopic struct {
		Topic             Topic
		Count             int32 `json:",omitempty"`
		ReplicationFactor int16 `json:",omitempty"`
		// Manual: Topic.Partitions are a manual replica assignment, which Apply checks
		// again against the brokers registered when it runs.
		Manual bool `json:",omitempty"`
	}
	cmdDeleteTopic   struct{ Name string }
	cmdAddPartitions struct {
		Name       string
		Partitions []Partition
		Count      int32 `json:",omitempty"` // place Count more partitions in Apply
		Manual     bool  `json:",omitempty"` // Partitions are a manual assignment; Apply checks it again
	}
	// cmdBrokerState fences, unfences or marks a broker as shutting down.
	cmdBrokerState struct {
		ID           int32
		Fenced       bool
		ShuttingDown bool
	}
	cmdAlterPartition struct {
		Topic          string
		Partition      int32
		LeaderID       int32
		LeaderEpoch    int32
		PartitionEpoch int32
		ISR            []int32
	}
	cmdReassign struct {
		Topic     string
		Partition int32
		Target    []int32 // nil cancels
	}
	cmdUnregisterBroker struct{ ID int32 }
	cmdTopicConfigs     struct {
		Name    string
		Ops     []ConfigOp
		Replace map[string]string // non-nil: replace all configs (legacy AlterConfigs)
	}
	cmdBrokerConfigs struct{ Ops []ConfigOp }
	cmdProducerIDs   struct{ Count int32 }
)

// applyResult is what Apply returns to the proposer.
type applyResult struct {
	err   error
	value any
}

// fsm is the metadata state machine.
type fsm struct {
	state   atomic.Pointer[State]
	mu      sync.Mutex // serialises Apply/Restore with notification
	changed chan struct{}
}

func newFSM() *fsm {
	f := &fsm{changed: make(chan struct{})}
	f.state.Store(emptyState())
	return f
}

func (f *fsm) publish(s *State) {
	f.state.Store(s)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply applies one committed command. Validation lives here so that every node decides
// the same way from the same log.
func (f *fsm) Apply(entry *raft.Log) any {
	var cmd command
	if err := json.Unmarshal(entry.Data, &cmd); err != nil {
		return applyResult{err: fmt.Errorf("%w: undecodable command: %v", ErrInvalidRequest, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.state.Load().clone()
	next.Version = entry.Index
	value, err := apply(next, cmd)
	if err != nil {
		return applyResult{err: err}
	}
	f.publish(next)
	return applyResult{value: value}
}

func decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return v, nil
}

func apply(s *State, cmd command) (any, error) {
	switch cmd.Type {
	case "init-cluster":
		c, err := decode[cmdInitCluster](cmd.Data)
		if err == nil && s.ClusterID == "" {
			s.ClusterID = c.ClusterID
		}
		return s.ClusterID, err
	case "register-broker":
		c, err := decode[cmdRegisterBroker](cmd.Data)
		if err != nil {
			return nil, err
		}
		// A (re)starting broker is live again; offline partitions whose ISR holds it get
		// it as their leader. One whose logs may have lost acknowledged records first
		// leaves every ISR that has another live member to lead.
		b := c.Broker
		if c.LeaveISR {
			fenceFollower(s, b.ID)
			moveOff(s, b.ID, false)
		}
		b.Fenced, b.ShuttingDown = false, false
		s.Brokers[b.ID] = b
		electOffline(s)
		return nil, nil
	case "create-topic":
		c, err := decode[cmdCreateTopic](cmd.Data)
		if err != nil {
			return nil, err
		}
		if len(c.Topic.Partitions) == 0 && c.Count > 0 {
			if c.Count > 1<<20 {
				return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, c.Count)
			}
			if c.Topic.Partitions, err = place(s, 0, c.Count, c.ReplicationFactor); err != nil {
				return nil, err
			}
		}
		if c.Manual {
			if c.Topic.Partitions, err = manualPartitions(s, 0, replicaLists(c.Topic.Partitions), -1); err != nil {
				return nil, err
			}
		}
		if err := applyCreateTopic(s, c.Topic); err != nil {
			return nil, err
		}
		return s.Topics[c.Topic.Name], nil
	case "delete-topic":
		c, err := decode[cmdDeleteTopic](cmd.Data)
		if err != nil {
			return nil, err
		}
		if _, err := editableTopic(s, c.Name); err != nil {
			return nil, err
		}
		delete(s.Topics, c.Name)
		return nil, nil
	case "add-partitions":
		c, err := decode[cmdAddPartitions](cmd.Data)
		if err != nil {
			return nil, err
		}
		t, err := editableTopic(s, c.Name)
		if err != nil {
			return nil, err
		}
		if len(c.Partitions) == 0 && c.Count > 0 {
			have := int32(len(t.Partitions))
			if have+c.Count > 1<<20 {
				return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartitions, have+c.Count)
			}
			if c.Partitions, err = place(s, have, c.Count, int16(len(targetOf(&t.Partitions[0])))); err != nil {
				return nil, err
			}
		}
		if c.Manual {
			rf := len(targetOf(&t.Partitions[0]))
			if c.Partitions, err = manualPartitions(s, int32(len(t.Partitions)), replicaLists(c.Partitions), rf); err != nil {
				return nil, err
			}
		}
		for i, p := range c.Partitions {
			if p.ID != int32(len(t.Partitions)) {
				return nil, fmt.Errorf("%w: partition %d of %s out of order", ErrInvalidPartitions, i, c.Name)
			}
			t.Partitions = append(t.Partitions, p)
		}
		s.Topics[c.Name] = t
		return nil, nil
	case "topic-configs":
		c, err := decode[cmdTopicConfigs](cmd.Data)
		if err != nil {
			return nil, err
		}
		t, err := editableTopic(s, c.Name)
		if err != nil {
			return nil, err
		}
		if c.Replace != nil {
			for k, v := range c.Replace {
				if err := validateConfig(topicDefs, k, v); err != nil {
					return nil, err
				}
			}
			t.Configs = c.Replace
		} else if t.Configs, err = applyConfigOps(topicDefs, t.Configs, c.Ops); err != nil {
			return nil, err
		}
		s.Topics[c.Name] = t
		electOffline(s) // unclean.leader.election.enable may have been turned on
		return nil, nil
	case "broker-configs":
		c, err := decode[cmdBrokerConfigs](cmd.Data)
		if err != nil {
			return nil, err
		}
		if s.BrokerConfigs, err = applyConfigOps(brokerDefs, s.BrokerConfigs, c.Ops); err != nil {
			return nil, err
		}
		electOffline(s)
		return nil, nil
	case "scram-credentials":
		c, err := decode[cmdScramCredentials](cmd.Data)
		if err != nil {
			return nil, err
		}
		applyScramCredentials(s, c)
		return nil, nil
	case "group-configs":
		c, err := decode[cmdGroupConfigs](cmd.Data)
		if err != nil {
			return nil, err
		}
		return nil, applyGroupConfigs(s, c)
	case "producer-ids":
		c, err := decode[cmdProducerIDs](cmd.Data)
		if err != nil {
			return nil, err
		}
		if c.Count <= 0 {
			return nil, fmt.Errorf("%w: producer id block of %d", ErrInvalidRequest, c.Count)
		}
		first := s.NextProducerID
		s.NextProducerID += int64(c.Count)
		return first, nil
	case "broker-state":
		c, err := decode[cmdBrokerState](cmd.Data)
		if err != nil {
			return nil, err
		}
		return nil, setBrokerState(s, c)
	case "alter-partition":
		c, err := decode[cmdAlterPartition](cmd.Data)
		if err != nil {
			return nil, err
		}
		return alterPartition(s, c)
	case "replica-damaged":
		c, err := decode[cmdReplicaDamaged](cmd.Data)
		if err != nil {
			return nil, err
		}
		return replicaDamaged(s, c)
	case "reassign-partition":
		c, err := decode[cmdReassign](cmd.Data)
		if err != nil {
			return nil, err
		}
		return nil, reassign(s, c)
	case "elect-leaders":
		c, err := decode[cmdElectLeaders](cmd.Data)
		if err != nil {
			return nil, err
		}
		return electLeaders(s, c), nil
	case "preferred-leaders":
		return electPreferred(s), nil
	case "unregister-broker":
		c, err := decode[cmdUnregisterBroker](cmd.Data)
		if err != nil {
			return nil, err
		}
		return nil, unregisterBroker(s, c.ID)
	}
	return nil, fmt.Errorf("%w: unknown command %q", ErrInvalidRequest, cmd.Type)
}

// editableTopic returns a copy of a topic for a command to change and store back.
func editableTopic(s *State, name string) (*Topic, error) {
	t, ok := s.Topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return t.clone(), nil
}

var topicNameChars = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateTopicName applies Kafka's rules for topic names.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidTopic, name)
	case len(name) > 249:
		return fmt.Errorf("%w: name longer than 249 characters", ErrInvalidTopic)
	case !topicNameChars.MatchString(name):
		return fmt.Errorf("%w: %q has characters other than ASCII letters, digits, '.', '_' and '-'", ErrInvalidTopic, name)
	}
	return nil
}

func applyCreateTopic(s *State, t Topic) error {
	if err := ValidateTopicName(t.Name); err != nil {
		return err
	}
	if _, ok := s.Topics[t.Name]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
	}
	// Kafka refuses names that collide once '.' and '_' are treated alike (metric names).
	norm := strings.ReplaceAll(t.Name, ".", "_")
	for name := range s.Topics {
		if strings.ReplaceAll(name, ".", "_") == norm {
			return fmt.Errorf("%w: %s collides with existing topic %s", ErrInvalidTopic, t.Name, name)
		}
	}
	if len(t.Partitions) == 0 {
		return fmt.Errorf("%w: a topic needs at least one partition", ErrInvalidPartitions)
	}
	for k, v := range t.Configs {
		if err := validateConfig(topicDefs, k, v); err != nil {
			return err
		}
	}
	s.Topics[t.Name] = &t
	return nil
}

// ConfigOpType is an incremental config change (Kafka's IncrementalAlterConfigs ops).
type ConfigOpType int8

const (
	OpSet      ConfigOpType = 0
	OpDelete   ConfigOpType = 1
	OpAppend   ConfigOpType = 2
	OpSubtract ConfigOpType = 3
)

// ConfigOp is one incremental config change.
type ConfigOp struct {
	Name  string
	Op    ConfigOpType
	Value string
}

func applyConfigOps(defs []ConfigDef, current map[string]string, ops []ConfigOp) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range current {
		out[k] = v
	}
	for _, op := range ops {
		def, ok := findDef(defs, op.Name)
		if !ok {
			return nil, fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, op.Name)
		}
		if def.ReadOnly {
			return nil, fmt.Errorf("%w: %s cannot be changed at run time", ErrInvalidConfig, op.Name)
		}
		switch op.Op {
		case OpSet:
			out[op.Name] = op.Value
		case OpDelete:
			delete(out, op.Name)
		case OpAppend, OpSubtract:
			if def.Type != TypeList {
				return nil, fmt.Errorf("%w: %s is not a list; append and subtract need one", ErrInvalidConfig, op.Name)
			}
			cur, ok := out[op.Name]
			if !ok {
				cur = def.Default
			}
			items := splitList(cur)
			for _, v := range splitList(op.Value) {
				i := slices.Index(items, v)
				if op.Op == OpAppend && i < 0 {
					items = append(items, v)
				} else if op.Op == OpSubtract && i >= 0 {
					items = slices.Delete(items, i, i+1)
				}
			}
			out[op.Name] = strings.Join(items, ",")
		default:
			return nil, fmt.Errorf("%w: config operation %d", ErrInvalidConfig, op.Op)
		}
		if v, ok := out[op.Name]; ok {
			if err := validateConfig(defs, op.Name, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Snapshot and Restore: the whole State as JSON.

type fsmSnapshot struct{ state *State }

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return fsmSnapshot{f.state.Load()}, nil }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.state); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	s := emptyState()
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	if s.Brokers == nil || s.Topics == nil || s.BrokerConfigs == nil {
		return errors.New("restore metadata snapshot: missing sections")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(s)
	return nil
}
