package stream

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestPlanLayout(t *testing.T) {
	build := func() *Topology {
		top := NewTopology()
		orders := From(top, String(), String(), "orders")
		orders.Merge(From(top, String(), String(), "returns")).To("all", String(), String())
		Count(GroupBy(orders, "by-value", func(_, v string) string { return v }, String(), String()), "per-value")
		return top
	}
	cases := []struct {
		name     string
		existing map[string]int32
		wantErr  error
		errHas   []string
		wantRep  int32
	}{
		{name: "co-partitioned", existing: map[string]int32{"orders": 6, "returns": 6}, wantRep: 6},
		{name: "mismatch", existing: map[string]int32{"orders": 6, "returns": 4}, wantErr: ErrCoPartitioning,
			errHas: []string{"orders: 6", "returns: 4"}},
		{name: "missing input", existing: map[string]int32{"orders": 6}, wantErr: ErrMissingTopic, errHas: []string{"returns"}},
		{name: "changelog of another size", existing: map[string]int32{"orders": 6, "returns": 6, "app-per-value-changelog": 3},
			wantErr: ErrCoPartitioning, errHas: []string{"app-per-value-changelog has 3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top := build()
			l, err := planLayout(top, "app", top.subtopologies(), c.existing)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.internal["app-by-value-repartition"]; got != c.wantRep {
				t.Errorf("repartition partitions = %d, want %d", got, c.wantRep)
			}
			if got := l.internal["app-per-value-changelog"]; got != c.wantRep || !l.changelogs["app-per-value-changelog"] {
				t.Errorf("changelog partitions = %d (changelog %v), want %d", got, l.changelogs["app-per-value-changelog"], c.wantRep)
			}
		})
	}
}

// TestStateSurvivesReopen: a committed task batch and its changelog checkpoint are on disk
// after the database is closed and opened again; uncommitted writes are not.
func TestStateSurvivesReopen(t *testing.T) {
	fs := vfs.NewMem()
	top := NewTopology()
	Count(GroupByKey(From(top, String(), String(), "in"), String(), String()), "counts")
	sub := top.subtopologies()[0]
	out := &recordingSender{}
	open := func() *taskConfig {
		db, err := openStateDB("state", fs, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		return &taskConfig{appID: "app", topology: top, db: db, out: out, now: nowForTest}
	}
	cfg := open()
	tk, err := newTask(cfg, sub, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := tk.process(testRecord("in", 3, int64(i), "k", "v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tk.flush(); err != nil {
		t.Fatal(err)
	}
	if err := tk.commitState(); err != nil {
		t.Fatal(err)
	}
	if err := tk.process(testRecord("in", 3, 3, "uncommitted", "v")); err != nil {
		t.Fatal(err)
	}
	if err := tk.flush(); err != nil {
		t.Fatal(err)
	}
	tk.close()
	cfg.db.close()

	cfg = open()
	defer cfg.db.close()
	next, err := cfg.db.checkpoint("counts", 3)
	// The cache collapsed three updates of k into one changelog record (offset 0); the
	// uncommitted key's record (offset 1) was sent but its batch never committed.
	if err != nil || next != 1 {
		t.Fatalf("checkpoint = %d, %v; want 1", next, err)
	}
	tk, err = newTask(cfg, sub, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.close()
	store := TypedStore[string, int64]{tk.stores["counts"], String(), Int64()}
	if n, ok, err := store.Get("k"); err != nil || !ok || n != 3 {
		t.Errorf("k = %d %v %v, want 3", n, ok, err)
	}
	if _, ok, _ := store.Get("uncommitted"); ok {
		t.Error("an uncommitted write survived the reopen")
	}
}
