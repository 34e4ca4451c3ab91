package broker

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/record"
)

// writeDamagedTopic produces 20 batches of 5 records to a topic with small segments and
// flips one byte inside the records of the first batch of the second segment, as a bad
// disk would, under the running broker. It returns that batch's base offset.
func writeDamagedTopic(t *testing.T, br *Broker, topic string) int64 {
	t.Helper()
	cl := client(t, br)
	createTopic(t, cl, topic, 1, map[string]string{"segment.bytes": "1024"})
	for i := 0; i < 20; i++ {
		recs := make([]record.Record, 5)
		for j := range recs {
			recs[j] = record.Record{OffsetDelta: int32(j), Value: []byte("a value long enough to fill segments quickly")}
		}
		b, err := record.Build(record.Header{BaseTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		if resp := produceRaw(t, cl, topic, b); resp.ErrorCode != 0 {
			t.Fatalf("produce: code %d", resp.ErrorCode)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(br.cfg.DataDir, topic+"-0", "*.log"))
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("segments %v", segs)
	}
	f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var head [record.HeaderSize + 10]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		t.Fatal(err)
	}
	h, _ := record.ParseHeader(head[:])
	if _, err := f.WriteAt([]byte{head[record.HeaderSize+5] ^ 0x10}, record.HeaderSize+5); err != nil {
		t.Fatal(err)
	}
	return h.BaseOffset
}

func fetchOne(t *testing.T, br *Broker, topic string, replicaID int32, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes, req.MaxWaitMillis = 11, replicaID, 1<<20, 0
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.FetchResponse](t, client(t, br), req)
	return resp.Topics[0].Partitions[0]
}

func TestFollowerFetchOverDamageGetsStorageError(t *testing.T) {
	br, _ := startBrokerWith(t, t.TempDir(), func(c *Config) { c.ScrubBytesPerSecond = 0 })
	damaged := writeDamagedTopic(t, br, "dmg")

	// Before anything found the damage, a consumer would get the bad bytes by sendfile; a
	// follower's fetch validates them and is refused.
	fp := fetchOne(t, br, "dmg", 2, 0)
	if fp.ErrorCode != kerr.KafkaStorageError.Code || len(fp.RecordBatches) != 0 {
		t.Fatalf("follower fetch over damage: code %d, %d bytes", fp.ErrorCode, len(fp.RecordBatches))
	}
	if got := testutil.ToFloat64(br.scrub.damaged.WithLabelValues("dmg", "0")); got != 1 {
		t.Fatalf("damaged batches metric %v", got)
	}
	// Now the partition knows: consumers get everything below the damage and nothing of it.
	fp = fetchOne(t, br, "dmg", -1, 0)
	batches, err := record.Split(fp.RecordBatches)
	if fp.ErrorCode != 0 || err != nil || len(batches) == 0 {
		t.Fatalf("consumer fetch below damage: code %d, %v, %d batches", fp.ErrorCode, err, len(batches))
	}
	last, _ := record.ParseHeader(batches[len(batches)-1])
	if last.NextOffset() != damaged {
		t.Fatalf("consumer got up to %d, damage starts at %d", last.NextOffset(), damaged)
	}
	for _, replica := range []int32{-1, 2} {
		if fp := fetchOne(t, br, "dmg", replica, damaged); fp.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("replica %d fetch at the damaged offset: code %d", replica, fp.ErrorCode)
		}
	}
}

func TestScrubberFindsDamage(t *testing.T) {
	scrubIdle = 50 * time.Millisecond
	t.Cleanup(func() { scrubIdle = 10 * time.Second }) // runs after the broker's own cleanup stops it
	br, _ := startBrokerWith(t, t.TempDir(), func(c *Config) { c.ScrubBytesPerSecond = 64 << 10 })
	damaged := writeDamagedTopic(t, br, "scrubbed")
	p, ok := br.partition("scrubbed", 0)
	if !ok {
		t.Fatal("no partition")
	}
	// The log is marked first, then the broker counts and logs: wait for the count.
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(br.scrub.damaged.WithLabelValues("scrubbed", "0")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("scrubber did not find the damage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if from, ok := p.Log().Damaged(); !ok || from != damaged {
		t.Fatalf("damaged from %d (%v), want %d", from, ok, damaged)
	}
	time.Sleep(200 * time.Millisecond) // further cycles re-find the batch but count it once
	if got := testutil.ToFloat64(br.scrub.damaged.WithLabelValues("scrubbed", "0")); got != 1 {
		t.Fatalf("damaged batches metric %v", got)
	}
	if got := testutil.ToFloat64(br.scrub.bytes); got <= 0 {
		t.Fatalf("scrub bytes metric %v", got)
	}
	if fp := fetchOne(t, br, "scrubbed", -1, damaged); fp.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("consumer fetch at the damaged offset: code %d", fp.ErrorCode)
	}
}
