package group

import (
	"bytes"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type state int

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

type topicPartition struct {
	topic     string
	partition int32
}

type committed struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	timestamp   int64
	// recordOffset is where in __consumer_offsets the commit was written, -1 while a
	// transactional commit is being written: when a transaction's offsets become visible,
	// one is taken only over an older record (Kafka's CommitRecordMetadataAndOffset.olderThan).
	recordOffset int64
}

type protocol struct {
	name     string
	metadata []byte
}

type member struct {
	id, instanceID, clientID, host string
	sessionTimeout                 time.Duration
	rebalanceTimeout               time.Duration
	protocolType                   string
	protocols                      []protocol
	assignment                     []byte
	lastHeard                      time.Time

	join chan joinResult // waiting JoinGroup, nil when none
	sync chan syncResult // waiting SyncGroup, nil when none
}

type joinResult struct {
	code                       int16
	generation                 int32
	protocol, leader, memberID string
	members                    []kmsg.JoinGroupResponseMember
}

type syncResult struct {
	code       int16
	assignment []byte
}

// group is one consumer group. All fields are guarded by the Coordinator's mutex.
type group struct {
	id           string
	partition    int32
	state        state
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]bool // member ids handed out by MEMBER_ID_REQUIRED, not yet joined
	offsets      map[topicPartition]committed
	// pendingTxn holds, per producer id, the offsets of its transaction (TxnOffsetCommit,
	// KIP-447) until the transaction's marker makes them visible or drops them.
	pendingTxn map[int64]map[topicPartition]committed
	stateSince time.Time

	joinDeadline *time.Timer // ends the join phase: rebalance timeout or initial delay
	delaying     bool        // the initial rebalance delay of an empty group is running

	consumer *consumerGroup // set while the group speaks KIP-848 ConsumerGroupHeartbeat
}

func newGroup(id string, partition int32, now time.Time) *group {
	return &group{id: id, partition: partition, members: map[string]*member{}, pending: map[string]bool{},
		offsets: map[topicPartition]committed{}, stateSince: now}
}

func (g *group) setState(s state, now time.Time) {
	g.state, g.stateSince = s, now
}

// supportsProtocols reports whether a joining member's protocols fit the group's.
func (g *group) supportsProtocols(protocolType string, protos []protocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protos) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	// Every current member must share at least one protocol with the newcomer.
	for _, p := range protos {
		all := true
		for _, m := range g.members {
			if !m.supports(p.name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// matches reports whether a join names the same protocols, with the same metadata, in
// the same order, as the member's last join.
func (m *member) matches(protocolType string, protos []protocol) bool {
	if protocolType != m.protocolType || len(protos) != len(m.protocols) {
		return false
	}
	for i, p := range protos {
		if p.name != m.protocols[i].name || !bytes.Equal(p.metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

func (m *member) supports(name string) bool {
	for _, p := range m.protocols {
		if p.name == name {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member supports, by vote: each member votes
// for its most preferred candidate, as Kafka does.
func (g *group) selectProtocol() string {
	var candidates []string
	for _, m := range g.members {
		for _, p := range m.protocols {
			all := true
			for _, o := range g.members {
				if !o.supports(p.name) {
					all = false
					break
				}
			}
			if all && !contains(candidates, p.name) {
				candidates = append(candidates, p.name)
			}
		}
		break
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// allRejoined reports whether every member has a JoinGroup waiting.
func (g *group) allRejoined() bool {
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// failSyncs answers every waiting SyncGroup with code (a rebalance started under them).
func (g *group) failSyncs(code int16) {
	for _, m := range g.members {
		if m.sync != nil {
			m.sync <- syncResult{code: code}
			m.sync = nil
		}
	}
}

// restore loads persisted metadata. Members come back as they were so that clients that
// outlived a broker restart go on heartbeating; those that do not are expired by their
// session timeout.
func (g *group) restore(v *kmsg.GroupMetadataValue, now time.Time) {
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	g.protocol, g.leader = deref(v.Protocol), deref(v.Leader)
	g.members = map[string]*member{}
	for _, m := range v.Members {
		g.members[m.MemberID] = &member{id: m.MemberID, instanceID: deref(m.InstanceID), clientID: m.ClientID, host: m.ClientHost,
			sessionTimeout: time.Duration(m.SessionTimeoutMillis) * time.Millisecond, rebalanceTimeout: time.Duration(m.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType: v.ProtocolType, protocols: []protocol{{name: g.protocol, metadata: m.Subscription}}, assignment: m.Assignment, lastHeard: now}
	}
	if len(g.members) == 0 {
		g.setState(stateEmpty, now)
	} else {
		g.setState(stateStable, now)
	}
}

// metadataValue is what is persisted about the group.
func (g *group) metadataValue(now time.Time) []byte {
	v := kmsg.GroupMetadataValue{Version: 3, ProtocolType: g.protocolType, Generation: g.generation, CurrentStateTimestamp: now.UnixMilli()}
	if g.protocol != "" {
		v.Protocol = &g.protocol
	}
	if g.leader != "" {
		v.Leader = &g.leader
	}
	for _, m := range g.members {
		pm := kmsg.NewGroupMetadataValueMember()
		pm.MemberID, pm.ClientID, pm.ClientHost = m.id, m.clientID, m.host
		if m.instanceID != "" {
			id := m.instanceID
			pm.InstanceID = &id
		}
		pm.RebalanceTimeoutMillis, pm.SessionTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds()), int32(m.sessionTimeout.Milliseconds())
		pm.Subscription, pm.Assignment = m.metadataFor(g.protocol), m.assignment
		v.Members = append(v.Members, pm)
	}
	return v.AppendTo(nil)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

var errUnknownMember = kerr.UnknownMemberID.Code

// staticMember is the member holding a group.instance.id, if any.
func (g *group) staticMember(instanceID string) *member {
	if instanceID == "" {
		return nil
	}
	for _, m := range g.members {
		if m.instanceID == instanceID {
			return m
		}
	}
	return nil
}

// validateInstance checks a request's group.instance.id as Kafka's validateCurrentMember
// does: one the group does not know is UNKNOWN_MEMBER_ID, one held by another member id
// is FENCED_INSTANCE_ID (KIP-345: an old incarnation of a static member that a restart
// replaced).
func (g *group) validateInstance(memberID string, instanceID *string) int16 {
	if instanceID == nil || *instanceID == "" {
		return 0
	}
	switch m := g.staticMember(*instanceID); {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case m.id != memberID:
		return kerr.FencedInstanceID.Code
	}
	return 0
}

// joinMembers is what the leader's JoinGroup answer lists: every member's metadata for
// the chosen protocol.
func (g *group) joinMembers() []kmsg.JoinGroupResponseMember {
	all := make([]kmsg.JoinGroupResponseMember, 0, len(g.members))
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.ProtocolMetadata = m.id, m.metadataFor(g.protocol)
		if m.instanceID != "" {
			jm.InstanceID = kmsg.StringPtr(m.instanceID)
		}
		all = append(all, jm)
	}
	return all
}
