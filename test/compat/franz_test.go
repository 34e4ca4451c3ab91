package compat

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestFranzGoEveryCodec produces records idempotently to 6 partitions with each codec and
// reads every one back, checking order per partition, keys, values, headers, timestamps
// and offsets.
func TestFranzGoEveryCodec(t *testing.T) {
	perCodec := 100_000
	if testing.Short() {
		perCodec = 5_000
	}
	node := harness.Start(t, harness.Options{})
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	adm := kadm.NewClient(node.Client(t))
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "franz-" + name
			ctx := harness.Context(t, 3*time.Minute)
			if _, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			prod := node.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec),
				kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
			base := time.Now().Truncate(time.Millisecond)
			errs := make(chan error, 1)
			for i := 0; i < perCodec; i++ {
				r := &kgo.Record{Key: []byte("key-" + strconv.Itoa(i%1000)), Value: []byte(fmt.Sprintf("value-%d", i)),
					Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}, Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				prod.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				})
			}
			if err := prod.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errs:
				t.Fatalf("produce: %v", err)
			default:
			}
			cons := node.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			nextOffset := map[int32]int64{}
			lastIndex := map[string]int{} // per key: records of one key go to one partition in order
			seen := map[int]bool{}
			for len(seen) < perCodec {
				fetches := cons.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of %d: %v", len(seen), perCodec, err)
				}
				fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
				fetches.EachRecord(func(r *kgo.Record) {
					if r.Offset != nextOffset[r.Partition] {
						t.Fatalf("partition %d: offset %d, expected %d (gap or reorder)", r.Partition, r.Offset, nextOffset[r.Partition])
					}
					nextOffset[r.Partition]++
					i, err := strconv.Atoi(string(r.Headers[0].Value))
					if err != nil || len(r.Headers) != 1 || r.Headers[0].Key != "i" {
						t.Fatalf("headers %v", r.Headers)
					}
					if string(r.Value) != fmt.Sprintf("value-%d", i) || string(r.Key) != "key-"+strconv.Itoa(i%1000) {
						t.Fatalf("record %d: key %q value %q", i, r.Key, r.Value)
					}
					if !r.Timestamp.Equal(base.Add(time.Duration(i) * time.Millisecond)) {
						t.Fatalf("record %d: timestamp %v", i, r.Timestamp)
					}
					if prev, ok := lastIndex[string(r.Key)]; ok && prev >= i {
						t.Fatalf("key %s: record %d after %d", r.Key, i, prev)
					}
					lastIndex[string(r.Key)] = i
					if seen[i] {
						t.Fatalf("record %d twice", i)
					}
					seen[i] = true
				})
			}
			if len(nextOffset) != 6 {
				t.Fatalf("records landed in %d partitions, want 6", len(nextOffset))
			}
			t.Logf("%s: %d records produced idempotently and consumed back over %d partitions", name, len(seen), len(nextOffset))
		})
	}
}

// TestFranzGoAdmin drives the admin API through kadm.
func TestFranzGoAdmin(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, time.Minute)
	adm := kadm.NewClient(node.Client(t))
	retention := "3600000"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &retention}, "adm"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := adm.CreateTopic(ctx, 3, 1, nil, "adm"); resp.Err == nil {
		t.Fatal("creating an existing topic succeeded")
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil || !topics.Has("adm") || len(topics["adm"].Partitions) != 3 {
		t.Fatalf("list: %v %v", topics, err)
	}
	if _, err := adm.CreatePartitions(ctx, 2, "adm"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "adm"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			found[c.Key] = c.MaybeValue()
		}
	}
	if found["cleanup.policy"] != "compact" || found["retention.ms"] != "3600000" || found["segment.bytes"] != "1073741824" {
		t.Fatalf("configs %v", found)
	}
	if resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")}}, "adm"); err == nil && resp[0].Err == nil {
		t.Fatal("unknown config accepted")
	}
	cl := node.Client(t, kgo.DefaultProduceTopic("adm"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 4, Key: []byte{byte(i)}, Value: []byte{byte(i)}}).FirstErr(); err != nil { // a compacted topic takes keyed records only
			t.Fatal(err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "adm")
	if o, _ := ends.Lookup("adm", 4); err != nil || o.Offset != 10 {
		t.Fatalf("end offset %v %v", o, err)
	}
	deleted, err := adm.DeleteRecords(ctx, kadm.Offsets{"adm": {4: {Topic: "adm", Partition: 4, At: 6}}})
	if err != nil || deleted["adm"][4].Err != nil || deleted["adm"][4].LowWatermark != 6 {
		t.Fatalf("delete records: %v %v", deleted, err)
	}
	starts, _ := adm.ListStartOffsets(ctx, "adm")
	if o, _ := starts.Lookup("adm", 4); o.Offset != 6 {
		t.Fatalf("start offset after delete records: %d", o.Offset)
	}
	// A producer's metadata refresh would auto-create the topic again, as on Kafka.
	cl.Close()
	if dr, err := adm.DeleteTopics(ctx, "adm"); err != nil || dr["adm"].Err != nil {
		t.Fatalf("delete: %v %+v", err, dr)
	} else if err != nil {
		t.Fatal(err)
	}
	// A fresh client: kgo answers metadata requests from a short-lived cache.
	topics, _ = kadm.NewClient(node.Client(t)).ListTopics(ctx)
	if topics.Has("adm") {
		t.Fatalf("topic still listed after delete: %+v", topics["adm"])
	}
}
