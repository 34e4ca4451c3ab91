package stream

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strand-data/strand/test/harness"
)

// TestRestoreReadsCommittedChangelog writes a changelog as an exactly-once instance does:
// a committed transaction, an aborted one, another committed one, and one left open, as a
// crashed instance leaves it. A restore must apply the committed records only, stop at the
// last stable offset (its last record is a commit marker, not data) without hanging, and a
// store whose checkpoint is past that offset (it held the writes of a transaction that never
// committed) must be wiped and rebuilt, not trusted.
func TestRestoreReadsCommittedChangelog(t *testing.T) {
	node := harness.Start(t, harness.Options{})
	ctx := harness.Context(t, 45*time.Second)
	const app, store = "rt", "s"
	topic := ChangelogTopic(app, store)
	admClient := node.Client(t)
	if _, err := kadm.NewClient(admClient).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}

	producer := node.Client(t, kgo.TransactionalID("rt-writer"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	txn := func(commit kgo.TransactionEndTry, kvs ...string) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := int32(0); p < 2; p++ {
			for i := 0; i < len(kvs); i += 2 {
				r := &kgo.Record{Partition: p, Key: []byte(kvs[i])}
				if kvs[i+1] != "" {
					r.Value = []byte(kvs[i+1])
				}
				if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if commit == kgo.TryCommit || commit == kgo.TryAbort {
			if err := producer.EndTransaction(ctx, commit); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn(kgo.TryCommit, "a", "1", "b", "1", "c", "1")
	txn(kgo.TryAbort, "a", "aborted", "d", "aborted")
	txn(kgo.TryCommit, "b", "2", "c", "") // c deleted
	// Left open: a crashed instance's last transaction, not yet aborted by its successor.
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Partition: 0, Key: []byte("e"), Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	db, err := openStateDB(filepath.Join(t.TempDir(), "state"), vfs.Default, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	cfg := Config{AppID: app, Brokers: []string{node.KafkaAddr}, Logger: slog.New(slog.DiscardHandler)}

	// Partition 1 held the aborted writes and a checkpoint past the committed data, as a
	// store that trusted an uncommitted transaction would.
	junk := db.db.NewBatch()
	if err := junk.Set(append(storePrefix('d', store, 1), 'd'), []byte("aborted"), nil); err != nil {
		t.Fatal(err)
	}
	if err := setCheckpoint(junk, store, 1, 1000); err != nil {
		t.Fatal(err)
	}
	if err := junk.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}

	ends, err := kadm.NewClient(admClient).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "2"}
	for p := int32(0); p < 2; p++ {
		n, err := restoreStore(ctx, cfg, db, store, p)
		if err != nil {
			t.Fatalf("restore partition %d: %v", p, err)
		}
		if n != 5 { // a, b, c, then b, c: the aborted a and d are not records a restore sees
			t.Errorf("partition %d: restored %d records, want 5", p, n)
		}
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			v, err := getCopy(db.db, append(storePrefix('d', store, p), k...))
			if err != nil {
				t.Fatal(err)
			}
			if string(v) != want[k] || (v == nil) != (want[k] == "") {
				t.Errorf("partition %d key %s = %q, want %q", p, k, v, want[k])
			}
		}
		next, err := db.checkpoint(store, p)
		if err != nil {
			t.Fatal(err)
		}
		if end, _ := ends.Lookup(topic, p); next != end.Offset {
			t.Errorf("partition %d: checkpoint %d after the restore, want the last stable offset %d", p, next, end.Offset)
		}
	}
	// A second restore finds nothing to do: the checkpoint sits at the last stable offset.
	if n, err := restoreStore(ctx, cfg, db, store, 0); err != nil || n != 0 {
		t.Errorf("second restore: %d records, %v; want 0, nil", n, err)
	}
}

// TestProcessIDIsStable: an instance without an InstanceID names its transactional producer
// after a process id kept in its state database, so a restart on the same state takes the
// same transactional id (and fences what the crashed process left open), while another
// state directory is another instance.
func TestProcessIDIsStable(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *stateDB {
		db, err := openStateDB(filepath.Join(dir, name), vfs.Default, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open("a")
	first, err := db.processID()
	if err != nil || first == "" {
		t.Fatalf("process id %q, %v", first, err)
	}
	db.close()
	db = open("a")
	again, err := db.processID()
	db.close()
	if err != nil || again != first {
		t.Errorf("process id after reopen = %q, %v; want %q", again, err, first)
	}
	other := open("b")
	defer other.close()
	if id, err := other.processID(); err != nil || id == first {
		t.Errorf("another state dir has process id %q, %v; want a new one", id, err)
	}
}
