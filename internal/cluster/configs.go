package cluster

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ConfigType is a config's type as DescribeConfigs reports it (Kafka's ids).
type ConfigType int8

const (
	TypeBoolean  ConfigType = 1
	TypeString   ConfigType = 2
	TypeInt      ConfigType = 3
	TypeShort    ConfigType = 4
	TypeLong     ConfigType = 5
	TypeDouble   ConfigType = 6
	TypeList     ConfigType = 7
	TypeClass    ConfigType = 8
	TypePassword ConfigType = 9
)

// ConfigSource says where an effective config value came from (Kafka's DescribeConfigs ids).
type ConfigSource int8

const (
	SourceUnknown              ConfigSource = 0
	SourceDynamicTopic         ConfigSource = 1
	SourceDynamicBroker        ConfigSource = 2
	SourceDynamicDefaultBroker ConfigSource = 3
	SourceStaticBroker         ConfigSource = 4
	SourceDefault              ConfigSource = 5
)

// ConfigDef describes one config: its Kafka name, type, default and meaning.
type ConfigDef struct {
	Name          string
	Type          ConfigType
	Default       string
	Doc           string
	BrokerSynonym string // the broker-wide config a topic config falls back to
	ReadOnly      bool   // cannot be changed at run time
	Validate      func(string) error
}

func intRange(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		if v < lo || v > hi {
			return fmt.Errorf("%d is outside [%d, %d]", v, lo, hi)
		}
		return nil
	}
}

func floatRange(lo, hi float64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < lo || v > hi {
			return fmt.Errorf("%q is not a number in [%v, %v]", s, lo, hi)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(s string) error {
		if slices.Contains(values, s) {
			return nil
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(values, ", "))
	}
}

func boolean(s string) error {
	if s != "true" && s != "false" {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

func cleanupPolicy(s string) error {
	parts := strings.Split(s, ",")
	seen := map[string]bool{}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p != "delete" && p != "compact" || seen[p] {
			return fmt.Errorf("%q is not a list of delete and compact", s)
		}
		seen[p] = true
	}
	return nil
}

const maxLong = math.MaxInt64

var topicDefs = []ConfigDef{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", BrokerSynonym: "log.cleanup.policy", Validate: cleanupPolicy,
		Doc: "delete: remove old segments by time or size; compact: keep the latest record per key."},
	{Name: "compression.type", Type: TypeString, Default: "producer", BrokerSynonym: "compression.type",
		Validate: oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
		Doc:      "Codec of stored batches; producer keeps the producer's codec (the only value Strand stores as sent)."},
	{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", BrokerSynonym: "log.cleaner.delete.retention.ms", Validate: intRange(0, maxLong),
		Doc: "How long tombstones are kept in compacted topics."},
	{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", BrokerSynonym: "log.segment.delete.delay.ms", Validate: intRange(0, maxLong),
		Doc: "How long a deleted segment stays open for readers before its file is removed."},
	{Name: "flush.messages", Type: TypeLong, Default: "9223372036854775807", BrokerSynonym: "log.flush.interval.messages", Validate: intRange(1, maxLong),
		Doc: "Accepted for compatibility; durability is set by the broker's --fsync policy."},
	{Name: "flush.ms", Type: TypeLong, Default: "9223372036854775807", BrokerSynonym: "log.flush.interval.ms", Validate: intRange(0, maxLong),
		Doc: "Accepted for compatibility; durability is set by the broker's --fsync policy."},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", BrokerSynonym: "log.index.interval.bytes", Validate: intRange(0, math.MaxInt32),
		Doc: "Bytes of log between entries of the sparse offset index."},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", BrokerSynonym: "log.cleaner.max.compaction.lag.ms", Validate: intRange(1, maxLong),
		Doc: "Longest time a record stays uncompacted."},
	{Name: "max.message.bytes", Type: TypeInt, Default: "1048588", BrokerSynonym: "message.max.bytes", Validate: intRange(0, math.MaxInt32),
		Doc: "Largest record batch the topic accepts."},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", BrokerSynonym: "log.message.timestamp.type",
		Validate: oneOf("CreateTime", "LogAppendTime"), Doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's."},
	{Name: "message.timestamp.difference.max.ms", Type: TypeLong, Default: "9223372036854775807", BrokerSynonym: "log.message.timestamp.difference.max.ms", Validate: intRange(0, maxLong),
		Doc: "Largest accepted difference between a CreateTime timestamp and the broker's clock."},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", BrokerSynonym: "log.cleaner.min.cleanable.ratio", Validate: floatRange(0, 1),
		Doc: "Share of the log that must be uncompacted before the cleaner compacts it."},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", BrokerSynonym: "log.cleaner.min.compaction.lag.ms", Validate: intRange(0, maxLong),
		Doc: "Shortest time a record stays uncompacted."},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", BrokerSynonym: "min.insync.replicas", Validate: intRange(1, math.MaxInt32),
		Doc: "Fewest in-sync replicas that must hold a batch before acks=all succeeds."},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", BrokerSynonym: "log.preallocate", Validate: boolean,
		Doc: "Accepted for compatibility; segments are not preallocated."},
	{Name: "retention.bytes", Type: TypeLong, Default: "-1", BrokerSynonym: "log.retention.bytes", Validate: intRange(-1, maxLong),
		Doc: "Largest size of a partition before old segments are deleted; -1 for no limit."},
	{Name: "retention.ms", Type: TypeLong, Default: "604800000", BrokerSynonym: "log.retention.ms", Validate: intRange(-1, maxLong),
		Doc: "How long segments are kept before deletion; -1 for ever."},
	{Name: "segment.bytes", Type: TypeInt, Default: "1073741824", BrokerSynonym: "log.segment.bytes", Validate: intRange(14, math.MaxInt32),
		Doc: "Size at which a new segment is started."},
	{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", BrokerSynonym: "log.index.size.max.bytes", Validate: intRange(4, math.MaxInt32),
		Doc: "Accepted for compatibility; indexes grow as needed."},
	{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", BrokerSynonym: "log.roll.jitter.ms", Validate: intRange(0, maxLong),
		Doc: "Accepted for compatibility; no jitter is applied to segment.ms."},
	{Name: "segment.ms", Type: TypeLong, Default: "604800000", BrokerSynonym: "log.roll.ms", Validate: intRange(1, maxLong),
		Doc: "Age at which a new segment is started."},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", BrokerSynonym: "unclean.leader.election.enable", Validate: boolean,
		Doc: "Whether a replica outside the ISR may become leader, losing data."},
}

var brokerDefs = []ConfigDef{
	{Name: "auto.leader.rebalance.enable", Type: TypeBoolean, Default: "true", Validate: boolean, Doc: "Whether the controller periodically gives partitions back to their preferred (first) replica."},
	{Name: "auto.create.topics.enable", Type: TypeBoolean, Default: "true", Validate: boolean, Doc: "Create unknown topics when a client asks for their metadata."},
	{Name: "broker.heartbeat.interval.ms", Type: TypeInt, Default: "2000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How often a broker heartbeats the controller."},
	{Name: "broker.session.timeout.ms", Type: TypeInt, Default: "9000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How long the controller waits for a broker's heartbeat before fencing it."},
	{Name: "compression.type", Type: TypeString, Default: "producer", Validate: oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"), Doc: "Default codec of stored batches."},
	{Name: "default.replication.factor", Type: TypeInt, Default: "1", Validate: intRange(1, math.MaxInt16), Doc: "Replication factor of automatically created topics."},
	{Name: "group.consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How often members of KIP-848 consumer groups heartbeat."},
	{Name: "group.consumer.max.heartbeat.interval.ms", Type: TypeInt, Default: "15000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Longest heartbeat interval a KIP-848 consumer group may be given."},
	{Name: "group.consumer.max.session.timeout.ms", Type: TypeInt, Default: "60000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Longest session timeout a KIP-848 consumer group may be given."},
	{Name: "group.consumer.min.heartbeat.interval.ms", Type: TypeInt, Default: "5000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Shortest heartbeat interval a KIP-848 consumer group may be given."},
	{Name: "group.consumer.min.session.timeout.ms", Type: TypeInt, Default: "45000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Shortest session timeout a KIP-848 consumer group may be given."},
	{Name: "group.consumer.max.size", Type: TypeInt, Default: "2147483647", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Most members one KIP-848 consumer group may have."},
	{Name: "group.consumer.session.timeout.ms", Type: TypeInt, Default: "45000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How long a KIP-848 consumer group member may go without a heartbeat."},
	{Name: "group.initial.rebalance.delay.ms", Type: TypeInt, Default: "3000", ReadOnly: true, Validate: intRange(0, math.MaxInt32), Doc: "How long a new group waits for more members before its first rebalance."},
	{Name: "group.max.session.timeout.ms", Type: TypeInt, Default: "1800000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Longest session timeout a member may ask for."},
	{Name: "group.max.size", Type: TypeInt, Default: "2147483647", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Most members one group may have."},
	{Name: "group.min.session.timeout.ms", Type: TypeInt, Default: "6000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Shortest session timeout a member may ask for."},
	{Name: "leader.imbalance.check.interval.seconds", Type: TypeLong, Default: "300", Validate: intRange(1, maxLong), Doc: "How often the controller checks for partitions not led by their preferred replica."},
	{Name: "log.cleaner.backoff.ms", Type: TypeLong, Default: "15000", ReadOnly: true, Validate: intRange(1, maxLong), Doc: "How long the log cleaner rests when no log needs cleaning."},
	{Name: "log.cleaner.delete.retention.ms", Type: TypeLong, Default: "86400000", Validate: intRange(0, maxLong), Doc: "Default delete.retention.ms."},
	{Name: "log.cleaner.max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", Validate: intRange(1, maxLong), Doc: "Default max.compaction.lag.ms."},
	{Name: "log.cleaner.min.cleanable.ratio", Type: TypeDouble, Default: "0.5", Validate: floatRange(0, 1), Doc: "Default min.cleanable.dirty.ratio."},
	{Name: "log.cleaner.min.compaction.lag.ms", Type: TypeLong, Default: "0", Validate: intRange(0, maxLong), Doc: "Default min.compaction.lag.ms."},
	{Name: "log.cleanup.policy", Type: TypeList, Default: "delete", Validate: cleanupPolicy, Doc: "Default cleanup.policy."},
	{Name: "log.flush.interval.messages", Type: TypeLong, Default: "9223372036854775807", Validate: intRange(1, maxLong), Doc: "Default flush.messages."},
	{Name: "log.flush.interval.ms", Type: TypeLong, Default: "9223372036854775807", Validate: intRange(0, maxLong), Doc: "Default flush.ms."},
	{Name: "log.flush.offset.checkpoint.interval.ms", Type: TypeInt, Default: "60000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How often each partition writes its recovery point, the offset below which its log is known to be on disk."},
	{Name: "log.index.interval.bytes", Type: TypeInt, Default: "4096", Validate: intRange(0, math.MaxInt32), Doc: "Default index.interval.bytes."},
	{Name: "log.index.size.max.bytes", Type: TypeInt, Default: "10485760", Validate: intRange(4, math.MaxInt32), Doc: "Default segment.index.bytes."},
	{Name: "log.message.timestamp.difference.max.ms", Type: TypeLong, Default: "9223372036854775807", Validate: intRange(0, maxLong), Doc: "Default message.timestamp.difference.max.ms."},
	{Name: "log.message.timestamp.type", Type: TypeString, Default: "CreateTime", Validate: oneOf("CreateTime", "LogAppendTime"), Doc: "Default message.timestamp.type."},
	{Name: "log.preallocate", Type: TypeBoolean, Default: "false", Validate: boolean, Doc: "Default preallocate."},
	{Name: "log.retention.bytes", Type: TypeLong, Default: "-1", Validate: intRange(-1, maxLong), Doc: "Default retention.bytes."},
	{Name: "log.retention.check.interval.ms", Type: TypeLong, Default: "300000", ReadOnly: true, Validate: intRange(1, maxLong), Doc: "How often retention looks for segments to delete."},
	{Name: "log.retention.ms", Type: TypeLong, Default: "604800000", Validate: intRange(-1, maxLong), Doc: "Default retention.ms."},
	{Name: "log.roll.jitter.ms", Type: TypeLong, Default: "0", Validate: intRange(0, maxLong), Doc: "Default segment.jitter.ms."},
	{Name: "log.roll.ms", Type: TypeLong, Default: "604800000", Validate: intRange(1, maxLong), Doc: "Default segment.ms."},
	{Name: "log.segment.bytes", Type: TypeInt, Default: "1073741824", Validate: intRange(14, math.MaxInt32), Doc: "Default segment.bytes."},
	{Name: "log.segment.delete.delay.ms", Type: TypeLong, Default: "60000", Validate: intRange(0, maxLong), Doc: "Default file.delete.delay.ms."},
	{Name: "message.max.bytes", Type: TypeInt, Default: "1048588", Validate: intRange(0, math.MaxInt32), Doc: "Largest record batch a topic accepts unless its max.message.bytes says otherwise."},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", Validate: intRange(1, math.MaxInt32), Doc: "Default min.insync.replicas."},
	{Name: "num.partitions", Type: TypeInt, Default: "1", Validate: intRange(1, math.MaxInt32), Doc: "Partitions of automatically created topics."},
	{Name: "offsets.retention.minutes", Type: TypeInt, Default: "10080", Validate: intRange(1, math.MaxInt32), Doc: "How long committed offsets of empty groups are kept."},
	{Name: "offsets.topic.num.partitions", Type: TypeInt, Default: "50", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Partitions of __consumer_offsets."},
	{Name: "offsets.topic.replication.factor", Type: TypeShort, Default: "3", ReadOnly: true, Validate: intRange(1, math.MaxInt16), Doc: "Replication factor of __consumer_offsets."},
	{Name: "producer.id.expiration.ms", Type: TypeInt, Default: "86400000", Validate: intRange(1, math.MaxInt32), Doc: "How long a producer that writes nothing keeps its state in a partition (never while its transaction is open)."},
	{Name: "replica.lag.time.max.ms", Type: TypeLong, Default: "30000", ReadOnly: true, Validate: intRange(1, maxLong), Doc: "How long a follower may stay behind its leader's log end before it leaves the ISR."},
	{Name: "socket.request.max.bytes", Type: TypeInt, Default: "104857600", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Largest request frame accepted."},
	{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Type: TypeInt, Default: "10000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How often the transaction coordinator aborts transactions past their timeout."},
	{Name: "transaction.max.timeout.ms", Type: TypeInt, Default: "900000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Largest transaction.timeout.ms a producer may ask for."},
	{Name: "transaction.partition.verification.enable", Type: TypeBoolean, Default: "true", ReadOnly: true, Validate: boolean, Doc: "Whether a partition leader asks the transaction coordinator before a producer opens a transaction in it (KIP-890)."},
	{Name: "transaction.remove.expired.transaction.cleanup.interval.ms", Type: TypeInt, Default: "3600000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How often the transaction coordinator looks for expired transactional ids."},
	{Name: "transaction.state.log.min.isr", Type: TypeInt, Default: "2", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "min.insync.replicas of __transaction_state (at most its replication factor)."},
	{Name: "transaction.state.log.num.partitions", Type: TypeInt, Default: "50", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "Partitions of __transaction_state."},
	{Name: "transaction.state.log.replication.factor", Type: TypeShort, Default: "3", ReadOnly: true, Validate: intRange(1, math.MaxInt16), Doc: "Replication factor of __transaction_state."},
	{Name: "transaction.state.log.segment.bytes", Type: TypeInt, Default: "104857600", ReadOnly: true, Validate: intRange(14, math.MaxInt32), Doc: "segment.bytes of __transaction_state."},
	{Name: "transactional.id.expiration.ms", Type: TypeInt, Default: "604800000", ReadOnly: true, Validate: intRange(1, math.MaxInt32), Doc: "How long an idle transactional id is kept."},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Validate: boolean, Doc: "Default unclean.leader.election.enable."},
}

func init() {
	// Lookups binary-search these tables by name.
	for _, defs := range [][]ConfigDef{topicDefs, brokerDefs, groupDefs} {
		slices.SortFunc(defs, func(a, b ConfigDef) int { return strings.Compare(a.Name, b.Name) })
	}
}

// TopicConfigDefs lists the topic configs, sorted by name.
func TopicConfigDefs() []ConfigDef { return topicDefs }

// BrokerConfigDefs lists the broker configs, sorted by name.
func BrokerConfigDefs() []ConfigDef { return brokerDefs }

// TopicConfigDef looks up a topic config by name.
func TopicConfigDef(name string) (ConfigDef, bool) { return findDef(topicDefs, name) }

// BrokerConfigDef looks up a broker config by name.
func BrokerConfigDef(name string) (ConfigDef, bool) { return findDef(brokerDefs, name) }

func findDef(defs []ConfigDef, name string) (ConfigDef, bool) {
	i, ok := slices.BinarySearchFunc(defs, name, func(d ConfigDef, n string) int { return strings.Compare(d.Name, n) })
	if !ok {
		return ConfigDef{}, false
	}
	return defs[i], true
}

// validateConfig checks a name and value against defs.
func validateConfig(defs []ConfigDef, name, value string) error {
	def, ok := findDef(defs, name)
	if !ok {
		return fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, name)
	}
	if def.Validate != nil {
		if err := def.Validate(value); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidConfig, name, err)
		}
	}
	return nil
}

// TopicConfig is the effective value of a topic config: the topic's own setting, else the
// dynamic broker synonym, else the default.
func (s *State) TopicConfig(topic, name string) (string, ConfigSource, bool) {
	def, ok := TopicConfigDef(name)
	if !ok {
		return "", SourceUnknown, false
	}
	if t, ok := s.Topics[topic]; ok {
		if v, ok := t.Configs[name]; ok {
			return v, SourceDynamicTopic, true
		}
	}
	if v, ok := s.BrokerConfigs[def.BrokerSynonym]; ok {
		return v, SourceDynamicDefaultBroker, true
	}
	return def.Default, SourceDefault, true
}

// BrokerConfig is the effective value of a broker config.
func (s *State) BrokerConfig(name string) (string, ConfigSource, bool) {
	def, ok := BrokerConfigDef(name)
	if !ok {
		return "", SourceUnknown, false
	}
	if v, ok := s.BrokerConfigs[name]; ok {
		return v, SourceDynamicDefaultBroker, true
	}
	return def.Default, SourceDefault, true
}

// TopicConfigInt is TopicConfig parsed as an integer, falling back to the default on error.
func (s *State) TopicConfigInt(topic, name string) int64 {
	v, _, _ := s.TopicConfig(topic, name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		def, _ := TopicConfigDef(name)
		n, _ = strconv.ParseInt(def.Default, 10, 64)
	}
	return n
}

// BrokerConfigInt is BrokerConfig parsed as an integer.
func (s *State) BrokerConfigInt(name string) int64 {
	v, _, _ := s.BrokerConfig(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		def, _ := BrokerConfigDef(name)
		n, _ = strconv.ParseInt(def.Default, 10, 64)
	}
	return n
}
