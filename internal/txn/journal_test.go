package txn

import (
	"context"
	"reflect"
	"testing"

	"github.com/strand-data/strand/internal/journal"
)

// journalLog adapts a real journal to Log, as the broker adapts a replica.
type journalLog struct{ l *journal.Log }

func (j journalLog) Append(ctx context.Context, batch []byte) (int64, error) {
	res, err := j.l.Append(ctx, batch, journal.AppendOptions{})
	return res.BaseOffset, err
}
func (j journalLog) ReadBytes(offset, maxBytes int64) ([]byte, error) {
	return j.l.ReadBytes(offset, maxBytes, j.l.LogEndOffset(), true)
}
func (j journalLog) LogStartOffset() int64 { return j.l.LogStartOffset() }
func (j journalLog) LogEndOffset() int64   { return j.l.LogEndOffset() }

// TestStateSurvivesJournalReopen writes transaction state through a real journal, closes
// and reopens it, and a new coordinator loads the same table from the files (a broker
// restart), then finishes the PrepareAbort it finds.
func TestStateSurvivesJournalReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := journal.DefaultConfig()
	cfg.Logger = quiet()
	jl, err := journal.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.c.Unload(0)
	if err := f.c.Load(context.Background(), 0, 1, journalLog{jl}); err != nil {
		t.Fatal(err)
	}
	pid, e := f.initOK("kept")
	f.addOK("kept", pid, e, a0, b2)
	pid2, e2 := f.initOK("aborting")
	f.addOK("aborting", pid2, e2, a1)
	f.markers.block = make(chan struct{})
	if r := f.end("aborting", pid2, e2, false, 3); r.ErrorCode != 0 {
		t.Fatal(r.ErrorCode)
	}
	before := snapshot(f.c)
	f.c.Unload(0)
	if err := jl.Close(); err != nil {
		t.Fatal(err)
	}

	jl, err = journal.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jl.Close() })
	c2 := f.newCoordinator()
	if err := c2.Load(context.Background(), 0, 2, journalLog{jl}); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(c2); !reflect.DeepEqual(got, before) {
		t.Fatalf("after reopening:\n got %+v\nwant %+v", got, before)
	}
	close(f.markers.block)
	waitState(t, c2, "aborting", stateCompleteAbort)
}
