package txn

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describe answers DescribeTransactions (KIP-664), Kafka's handleDescribeTransactions: the
// committed state of each id this node coordinates.
func (c *Coordinator) describe(r *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range r.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ErrorCode = c.describeOneLocked(id, &st)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

func (c *Coordinator) describeOneLocked(id string, st *kmsg.DescribeTransactionsResponseTransactionState) int16 {
	if id == "" {
		return kerr.InvalidRequest.Code
	}
	if _, code := c.ownerLocked(id); code != 0 {
		return code
	}
	m := c.txns[id]
	if m == nil || m.state == stateDead {
		return kerr.TransactionalIDNotFound.Code
	}
	st.State = m.state.String()
	st.TimeoutMillis = m.timeoutMs
	st.StartTimestamp = m.startMs
	st.ProducerID = m.producerID
	st.ProducerEpoch = m.epoch
	for _, tp := range m.sortedPartitions() {
		if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
			t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			t.Topic = tp.Topic
			st.Topics = append(st.Topics, t)
		}
		last := &st.Topics[len(st.Topics)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return 0
}

// list answers ListTransactions (KIP-664), Kafka's TransactionStateManager
// listTransactionStates: every id of the loaded partitions that passes the filters (state
// names, producer ids and, from v1, "running longer than" a duration), or
// COORDINATOR_LOAD_IN_PROGRESS while any partition loads. State names it does not know are
// echoed in UnknownStateFilters.
func (c *Coordinator) list(r *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ListTransactionsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.loading) > 0 {
		resp.ErrorCode = codeLoadInProgress
		return resp
	}
	var states []state
	for _, name := range r.StateFilters {
		if s, ok := parseState(name); ok {
			states = append(states, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	duration := int64(-1)
	if r.Version >= 1 {
		duration = r.DurationFilterMillis
	}
	now := c.cfg.Now().UnixMilli()
	for _, m := range c.txns {
		switch {
		case m.state == stateDead:
		case len(r.ProducerIDFilters) > 0 && !slices.Contains(r.ProducerIDFilters, m.producerID):
		case len(r.StateFilters) > 0 && !slices.Contains(states, m.state):
		case duration >= 0 && now-m.startMs <= duration:
		default:
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID, st.ProducerID, st.TransactionState = m.id, m.producerID, m.state.String()
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
	}
	slices.SortFunc(resp.TransactionStates, func(a, b kmsg.ListTransactionsResponseTransactionState) int {
		return strings.Compare(a.TransactionalID, b.TransactionalID)
	})
	return resp
}
