package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

func (b *Broker) handleCreateTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		var err error
		switch {
		case seen[t.Topic] > 1:
			err = fmt.Errorf("%w: topic %s appears more than once in the request", cluster.ErrInvalidRequest, t.Topic)
		default:
			configs := map[string]string{}
			for _, c := range t.Configs {
				if c.Value != nil {
					configs[c.Name] = *c.Value
				}
			}
			spec := cluster.TopicSpec{Name: t.Topic, Partitions: t.NumPartitions, ReplicationFactor: t.ReplicationFactor, Configs: configs}
			if spec.Assignment, err = createTopicsAssignment(t.ReplicaAssignment); err != nil {
				break
			}
			var topic *cluster.Topic
			topic, err = b.createTopic(ctx, spec, req.ValidateOnly)
			if err == nil {
				rt.TopicID = topic.ID
				rt.NumPartitions = int32(len(topic.Partitions))
				rt.ReplicationFactor = int16(len(topic.Partitions[0].Replicas))
				s := b.meta.State()
				for _, def := range cluster.TopicConfigDefs() {
					v, src, _ := s.TopicConfig(t.Topic, def.Name)
					if _, ok := configs[def.Name]; ok {
						v, src = configs[def.Name], cluster.SourceDynamicTopic
					}
					rc := kmsg.NewCreateTopicsResponseTopicConfig()
					rc.Name, rc.Value, rc.ReadOnly, rc.Source = def.Name, kmsg.StringPtr(v), def.ReadOnly, int8(src)
					rt.Configs = append(rt.Configs, rc)
				}
			}
		}
		rt.ErrorCode = errorCode(err)
		rt.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createTopicsAssignment orders a CreateTopics manual assignment by partition: nil when
// there is none, an error unless the partitions are 0, 1, … each named once, as Kafka's
// controller requires ("partitions should be a consecutive 0-based integer sequence").
func createTopicsAssignment(in []kmsg.CreateTopicsRequestTopicReplicaAssignment) ([][]int32, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([][]int32, len(in))
	for _, a := range in {
		if a.Partition < 0 || int(a.Partition) >= len(in) || out[a.Partition] != nil {
			return nil, fmt.Errorf("%w: partitions should be a consecutive 0-based integer sequence", cluster.ErrInvalidReplicaAssignment)
		}
		out[a.Partition] = a.Replicas
		if out[a.Partition] == nil {
			out[a.Partition] = []int32{} // named, with no replicas: refused as empty later
		}
	}
	return out, nil
}

func (b *Broker) handleDeleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: kmsg.StringPtr(n)})
	}
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = t.name, t.id
		s := b.meta.State()
		var err error
		var name string
		switch {
		case t.name != nil:
			name = *t.name
			if topic, ok := s.Topics[name]; ok {
				rt.TopicID = topic.ID
			}
		default:
			if topic, ok := s.TopicByID(t.id); ok {
				name = topic.Name
				rt.Topic = kmsg.StringPtr(name)
			} else {
				rt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		}
		if topic, ok := s.Topics[name]; ok && topic.Internal {
			err = fmt.Errorf("%w: %s is internal", cluster.ErrInvalidRequest, name)
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		} else {
			err = b.meta.DeleteTopic(ctx, name)
			if err == nil {
				err = b.reconcile()
			}
			rt.ErrorCode = errorCode(err)
		}
		rt.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (b *Broker) handleCreatePartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		var assignment [][]int32
		if t.Assignment != nil {
			assignment = make([][]int32, len(t.Assignment))
			for i, a := range t.Assignment {
				assignment[i] = a.Replicas
			}
		}
		err := b.meta.CreatePartitions(ctx, t.Topic, t.Count, assignment, req.ValidateOnly)
		if err == nil && !req.ValidateOnly {
			err = b.reconcile()
		}
		rt.ErrorCode, rt.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

const (
	resourceTopic  = 2
	resourceBroker = 4
)

func (b *Broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	s := b.meta.State()
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var defs []cluster.ConfigDef
		var lookup func(name string) (string, cluster.ConfigSource, bool)
		switch r.ResourceType {
		case resourceTopic:
			if _, ok := s.Topics[r.ResourceName]; !ok {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				rr.ErrorMessage = kmsg.StringPtr("unknown topic " + r.ResourceName)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			defs = cluster.TopicConfigDefs()
			lookup = func(n string) (string, cluster.ConfigSource, bool) { return s.TopicConfig(r.ResourceName, n) }
		case resourceBroker:
			if r.ResourceName != "" && r.ResourceName != fmt.Sprint(b.cfg.NodeID) {
				rr.ErrorCode = kerr.InvalidRequest.Code
				rr.ErrorMessage = kmsg.StringPtr("unknown broker " + r.ResourceName)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			defs = cluster.BrokerConfigDefs()
			lookup = func(n string) (string, cluster.ConfigSource, bool) { return b.brokerConfig(s, n) }
		case resourceGroup:
			if r.ResourceName == "" {
				rr.ErrorCode = kerr.InvalidRequest.Code
				rr.ErrorMessage = kmsg.StringPtr("Group name must not be empty")
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			defs = cluster.GroupConfigDefs()
			lookup = func(n string) (string, cluster.ConfigSource, bool) {
				for _, def := range defs {
					if def.Name == n {
						return b.groupConfig(s, r.ResourceName, def)
					}
				}
				return "", cluster.SourceUnknown, false
			}
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			rr.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("resource type %d is not supported", r.ResourceType))
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		want := map[string]bool{}
		for _, n := range r.ConfigNames {
			want[n] = true
		}
		for _, def := range defs {
			if r.ConfigNames != nil && !want[def.Name] {
				continue
			}
			v, src, _ := lookup(def.Name)
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value, rc.ReadOnly = def.Name, kmsg.StringPtr(v), def.ReadOnly
			rc.Source, rc.IsDefault = kmsg.ConfigSource(src), src == cluster.SourceDefault
			rc.ConfigType = kmsg.ConfigType(def.Type)
			if req.IncludeDocumentation {
				rc.Documentation = kmsg.StringPtr(def.Doc)
			}
			if req.IncludeSynonyms && r.ResourceType != resourceGroup {
				rc.ConfigSynonyms = synonyms(s, r.ResourceName, def, r.ResourceType == resourceTopic)
			}
			rr.Configs = append(rr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// synonyms lists where a config's value could come from, most specific first.
func synonyms(s *cluster.State, topic string, def cluster.ConfigDef, isTopic bool) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(name, value string, src cluster.ConfigSource) {
		syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		syn.Name, syn.Value, syn.Source = name, kmsg.StringPtr(value), kmsg.ConfigSource(src)
		out = append(out, syn)
	}
	if isTopic {
		if t, ok := s.Topics[topic]; ok {
			if v, ok := t.Configs[def.Name]; ok {
				add(def.Name, v, cluster.SourceDynamicTopic)
			}
		}
		if v, ok := s.BrokerConfigs[def.BrokerSynonym]; ok {
			add(def.BrokerSynonym, v, cluster.SourceDynamicDefaultBroker)
		}
		if bdef, ok := cluster.BrokerConfigDef(def.BrokerSynonym); ok {
			add(bdef.Name, bdef.Default, cluster.SourceDefault)
			return out
		}
	} else if v, ok := s.BrokerConfigs[def.Name]; ok {
		add(def.Name, v, cluster.SourceDynamicDefaultBroker)
	}
	add(def.Name, def.Default, cluster.SourceDefault)
	return out
}

func (b *Broker) handleAlterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case resourceTopic:
			configs := map[string]string{}
			for _, c := range r.Configs {
				if c.Value != nil {
					configs[c.Name] = *c.Value
				}
			}
			err = b.meta.ReplaceTopicConfigs(ctx, r.ResourceName, configs, req.ValidateOnly)
		case resourceBroker:
			var ops []cluster.ConfigOp
			for _, c := range r.Configs {
				if c.Value != nil {
					ops = append(ops, cluster.ConfigOp{Name: c.Name, Op: cluster.OpSet, Value: *c.Value})
				}
			}
			err = b.meta.AlterBrokerConfigs(ctx, ops, req.ValidateOnly)
		default:
			err = fmt.Errorf("%w: resource type %d", cluster.ErrInvalidRequest, r.ResourceType)
		}
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func (b *Broker) handleIncrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) kafka.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var ops []cluster.ConfigOp
		for _, c := range r.Configs {
			op := cluster.ConfigOp{Name: c.Name, Op: cluster.ConfigOpType(c.Op)}
			if c.Value != nil {
				op.Value = *c.Value
			}
			ops = append(ops, op)
		}
		var err error
		switch r.ResourceType {
		case resourceTopic:
			err = b.meta.AlterTopicConfigs(ctx, r.ResourceName, ops, req.ValidateOnly)
		case resourceBroker:
			err = b.meta.AlterBrokerConfigs(ctx, ops, req.ValidateOnly)
		case resourceGroup:
			err = b.meta.AlterGroupConfigs(ctx, r.ResourceName, ops, b.checkGroupConfigs, req.ValidateOnly)
		default:
			err = fmt.Errorf("%w: resource type %d", cluster.ErrInvalidRequest, r.ResourceType)
		}
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}
