package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func describeGroupConfigs(t *testing.T, cl *kgo.Client, group string) (int16, map[string]string) {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = resourceGroup, group
	req.Resources = append(req.Resources, r)
	rr := request[*kmsg.DescribeConfigsResponse](t, cl, req).Resources[0]
	got := map[string]string{}
	for _, c := range rr.Configs {
		got[c.Name] = *c.Value + "/" + c.Source.String()
	}
	return rr.ErrorCode, got
}

func alterGroupConfig(t *testing.T, cl *kgo.Client, group string, validateOnly bool, kv ...string) kmsg.IncrementalAlterConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = resourceGroup, group
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = kv[i], kmsg.StringPtr(kv[i+1])
		r.Configs = append(r.Configs, c)
	}
	req.Resources = append(req.Resources, r)
	return request[*kmsg.IncrementalAlterConfigsResponse](t, cl, req).Resources[0]
}

// Group config resources (type 32, Kafka 4.0 GroupConfig in group-coordinator/…/GroupConfig.java):
// DescribeConfigs lists consumer.session.timeout.ms and consumer.heartbeat.interval.ms,
// IncrementalAlterConfigs sets them within group.consumer.{min,max}.* (INVALID_CONFIG
// outside, as GroupConfig.validateValues), and the KIP-848 coordinator heartbeats the group
// at its own interval.
func TestGroupConfigResources(t *testing.T) {
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) {
		c.StaticConfigs = map[string]string{"group.consumer.max.heartbeat.interval.ms": "20000"}
	})
	cl := client(t, b)
	createTopic(t, cl, "in", 1, nil)

	code, got := describeGroupConfigs(t, cl, "etl")
	if code != 0 || got["consumer.session.timeout.ms"] != "45000/DEFAULT_CONFIG" || got["consumer.heartbeat.interval.ms"] != "5000/DEFAULT_CONFIG" {
		t.Fatalf("describe of a group with no settings: code %d, %v", code, got)
	}
	refused := []struct {
		name string
		kv   []string
		want int16
	}{
		{"session below group.consumer.min.session.timeout.ms", []string{"consumer.session.timeout.ms", "30000"}, kerr.InvalidConfig.Code},
		{"session above group.consumer.max.session.timeout.ms", []string{"consumer.session.timeout.ms", "61000"}, kerr.InvalidConfig.Code},
		{"heartbeat below group.consumer.min.heartbeat.interval.ms", []string{"consumer.heartbeat.interval.ms", "4000"}, kerr.InvalidConfig.Code},
		{"heartbeat above the static group.consumer.max.heartbeat.interval.ms", []string{"consumer.heartbeat.interval.ms", "21000"}, kerr.InvalidConfig.Code},
		{"not an integer", []string{"consumer.session.timeout.ms", "soon"}, kerr.InvalidConfig.Code},
		{"unknown name", []string{"consumer.max.poll.records", "5"}, kerr.InvalidConfig.Code},
	}
	for _, tc := range refused {
		if rr := alterGroupConfig(t, cl, "etl", false, tc.kv...); rr.ErrorCode != tc.want {
			t.Errorf("%s: code %d (%s), want %d", tc.name, rr.ErrorCode, msg(rr.ErrorMessage), tc.want)
		}
	}
	if rr := alterGroupConfig(t, cl, "", false, "consumer.session.timeout.ms", "50000"); rr.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("empty group name: code %d, want INVALID_REQUEST", rr.ErrorCode)
	}
	if rr := alterGroupConfig(t, cl, "etl", true, "consumer.heartbeat.interval.ms", "18000"); rr.ErrorCode != 0 {
		t.Fatalf("validate only: code %d (%s)", rr.ErrorCode, msg(rr.ErrorMessage))
	}
	if _, got := describeGroupConfigs(t, cl, "etl"); got["consumer.heartbeat.interval.ms"] != "5000/DEFAULT_CONFIG" {
		t.Fatalf("validate only changed the config: %v", got)
	}
	if rr := alterGroupConfig(t, cl, "etl", false, "consumer.heartbeat.interval.ms", "18000", "consumer.session.timeout.ms", "50000"); rr.ErrorCode != 0 {
		t.Fatalf("valid settings: code %d (%s)", rr.ErrorCode, msg(rr.ErrorMessage))
	}
	if _, got := describeGroupConfigs(t, cl, "etl"); got["consumer.heartbeat.interval.ms"] != "18000/GROUP_CONFIG" || got["consumer.session.timeout.ms"] != "50000/GROUP_CONFIG" {
		t.Fatalf("after the change: %v", got)
	}

	// The coordinator tells the group's members its own heartbeat interval, other groups the default.
	for group, want := range map[string]int32{"etl": 18000, "other": 5000} {
		hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		hb.Group, hb.MemberID, hb.MemberEpoch, hb.RebalanceTimeoutMillis = group, "member-of-"+group, 0, 30000
		hb.SubscribedTopicNames = []string{"in"}
		hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		resp := request[*kmsg.ConsumerGroupHeartbeatResponse](t, cl, hb)
		if resp.ErrorCode != 0 || resp.HeartbeatIntervalMillis != want {
			t.Errorf("group %s: heartbeat code %d (%s), interval %d ms, want %d", group, resp.ErrorCode, msg(resp.ErrorMessage), resp.HeartbeatIntervalMillis, want)
		}
	}
}
