package broker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strand-data/strand/internal/cluster"
)

type brokerMetrics struct {
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	recordsIn  *prometheus.CounterVec
	recordsOut *prometheus.CounterVec
	produceErr *prometheus.CounterVec
	// producerIDErr counts InitProducerId requests that got no id, by why (producerIDReason).
	producerIDErr *prometheus.CounterVec

	cleanerPasses    prometheus.Counter
	cleanerBytes     prometheus.Counter
	cleanerErrors    prometheus.Counter
	retentionDeleted *prometheus.CounterVec
	fetchSent        *fetchSendCounters
}

// fetchSendCounters count how Fetch record bytes reached the socket: by sendfile from the
// page cache, or copied through user space (only when the connection is not TCP). A test
// and bench/run.sh read them to show that fetch is zero-copy.
type fetchSendCounters struct {
	sendfile, copied prometheus.Counter
}

func (c *fetchSendCounters) add(sent, copied int64) {
	if sent > 0 {
		c.sendfile.Add(float64(sent))
	}
	if copied > 0 {
		c.copied.Add(float64(copied))
	}
}

func newBrokerMetrics(reg prometheus.Registerer, b *Broker) *brokerMetrics {
	m := &brokerMetrics{
		bytesIn:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_topic_bytes_in_total", Help: "Record batch bytes appended, by topic."}, []string{"topic"}),
		bytesOut:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_topic_bytes_out_total", Help: "Record batch bytes sent to consumers, by topic."}, []string{"topic"}),
		recordsIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_topic_records_in_total", Help: "Records appended, by topic."}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_topic_records_out_total", Help: "Records sent to consumers, by topic (whole batches, so records before the fetch offset in the first batch count too)."}, []string{"topic"}),
		produceErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_produce_errors_total", Help: "Partition produce failures, by Kafka error code."}, []string{"code"}),
	}
	m.producerIDErr = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_producer_id_errors_total",
		Help: "InitProducerId requests answered without a producer id, by reason: metadata_storage (this node's metadata store cannot write, e.g. a full disk), no_metadata_leader, timeout, other."}, []string{"reason"})
	reg.MustRegister(m.producerIDErr)
	m.fetchSent = &fetchSendCounters{
		sendfile: prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_fetch_sendfile_bytes_total", Help: "Fetch record bytes sent with sendfile(2), straight from the page cache."}),
		copied:   prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_fetch_copied_bytes_total", Help: "Fetch record bytes copied through user space (connections or files sendfile cannot serve)."}),
	}
	reg.MustRegister(m.fetchSent.sendfile, m.fetchSent.copied)
	m.cleanerPasses = prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_cleaner_passes_total", Help: "Log cleaner passes that rewrote segments."})
	m.cleanerBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_cleaner_bytes_cleaned_total", Help: "Bytes of dirty log the cleaner compacted."})
	m.cleanerErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "strand_cleaner_errors_total", Help: "Log cleaner passes that failed."})
	m.retentionDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strand_retention_deleted_segments_total", Help: "Segments deleted by retention.ms or retention.bytes, by topic."}, []string{"topic"})
	reg.MustRegister(m.bytesIn, m.bytesOut, m.recordsIn, m.recordsOut, m.produceErr, m.cleanerPasses, m.cleanerBytes, m.cleanerErrors, m.retentionDeleted,
		&partitionCollector{b: b}, &lagCollector{b: b})
	return m
}

// partitionCollector reports per-partition offsets at scrape time.
type partitionCollector struct{ b *Broker }

var (
	descPartitions = prometheus.NewDesc("strand_partitions", "Partition replicas hosted by this node.", nil, nil)
	descLogEnd     = prometheus.NewDesc("strand_log_end_offset", "Next offset to be assigned.", []string{"topic", "partition"}, nil)
	descLogStart   = prometheus.NewDesc("strand_log_start_offset", "First readable offset.", []string{"topic", "partition"}, nil)
	descHW         = prometheus.NewDesc("strand_high_watermark", "Offset below which records are committed.", []string{"topic", "partition"}, nil)
	descLogSize    = prometheus.NewDesc("strand_log_size_bytes", "Bytes of segments on disk.", []string{"topic", "partition"}, nil)
	descLeading    = prometheus.NewDesc("strand_partitions_leader", "Partitions this node leads.", nil, nil)
	descUnderRepl  = prometheus.NewDesc("strand_partitions_under_replicated", "Partitions this node leads whose ISR is smaller than their replica set.", nil, nil)
	descOffline    = prometheus.NewDesc("strand_partitions_offline", "Partitions in the cluster with no live leader, as this node's metadata says.", nil, nil)
	descDirty      = prometheus.NewDesc("strand_log_dirty_ratio", "Share of a compacted log's bytes not yet cleaned.", []string{"topic", "partition"}, nil)
	descSinceClean = prometheus.NewDesc("strand_log_seconds_since_last_clean", "Seconds since the cleaner last compacted a partition (absent before the first clean).", []string{"topic", "partition"}, nil)
	descMetaWrite  = prometheus.NewDesc("strand_metadata_store_writable", "1 while this node's metadata store (the raft log) can write; 0 after a failed write or while a full disk has it spending its reserved space, when metadata writes clients ask for (producer ids, topics, configs) are refused.", nil, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPartitions, descLogEnd, descLogStart, descHW, descLogSize, descLeading, descUnderRepl, descOffline, descDirty, descSinceClean, descMetaWrite} {
		ch <- d
	}
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	var state *cluster.State
	if c.b.meta != nil {
		state = c.b.meta.State()
	}
	c.b.mu.RLock()
	defer c.b.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(descPartitions, prometheus.GaugeValue, float64(len(c.b.partitions)))
	leading, under := 0, 0
	for _, p := range c.b.partitions {
		if p.IsLeader() {
			leading++
			if isr, replicas := p.ReplicaCounts(); isr < replicas {
				under++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descLeading, prometheus.GaugeValue, float64(leading))
	ch <- prometheus.MustNewConstMetric(descUnderRepl, prometheus.GaugeValue, float64(under))
	if c.b.meta != nil {
		ch <- prometheus.MustNewConstMetric(descOffline, prometheus.GaugeValue, float64(offlinePartitions(c.b.meta.State())))
		writable := 1.0
		if c.b.meta.MetadataWriteHealth() != nil {
			writable = 0
		}
		ch <- prometheus.MustNewConstMetric(descMetaWrite, prometheus.GaugeValue, writable)
	}
	for tp, p := range c.b.partitions {
		labels := []string{tp.topic, strconv.Itoa(int(tp.id))}
		l := p.Log()
		ch <- prometheus.MustNewConstMetric(descLogEnd, prometheus.GaugeValue, float64(l.LogEndOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(descLogStart, prometheus.GaugeValue, float64(l.LogStartOffset()), labels...)
		ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(p.HighWatermark()), labels...)
		ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(l.Size()), labels...)
		if state == nil {
			continue
		}
		if _, compacts := cleanupPolicy(state, tp.topic); compacts {
			cs := l.CleanerStatus()
			ch <- prometheus.MustNewConstMetric(descDirty, prometheus.GaugeValue, cs.DirtyRatio, labels...)
			if !cs.LastClean.IsZero() {
				ch <- prometheus.MustNewConstMetric(descSinceClean, prometheus.GaugeValue, time.Since(cs.LastClean).Seconds(), labels...)
			}
		}
	}
}

// lagCollector reports each group's committed offsets and lag at scrape time.
type lagCollector struct{ b *Broker }

var (
	descCommitted = prometheus.NewDesc("strand_consumer_group_committed_offset", "Committed offset of a group on a partition.", []string{"group", "topic", "partition"}, nil)
	descLag       = prometheus.NewDesc("strand_consumer_group_lag", "High watermark minus committed offset.", []string{"group", "topic", "partition"}, nil)
)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCommitted
	ch <- descLag
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.groups == nil {
		return
	}
	for group, topics := range c.b.groups.CommittedOffsets() {
		for topic, parts := range topics {
			for partition, offset := range parts {
				labels := []string{group, topic, strconv.Itoa(int(partition))}
				ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(offset), labels...)
				if p, ok := c.b.partition(topic, partition); ok {
					ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(max(0, p.HighWatermark()-offset)), labels...)
				}
			}
		}
	}
}

// offlinePartitions counts partitions without a live leader.
func offlinePartitions(s *cluster.State) int {
	n := 0
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if br, ok := s.Brokers[p.Leader]; !ok || br.Fenced {
				n++
			}
		}
	}
	return n
}
