package partition

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/journal"
	"github.com/strand-data/strand/internal/record"
)

func openTest(t *testing.T, self int32) *Partition {
	t.Helper()
	cfg := journal.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := Open("t", 0, self, t.TempDir(), cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func batch(t *testing.T, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte("v")}
	}
	b, err := record.Build(record.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, record.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHighWatermarkIsMinimumOverISR: the high watermark waits for every in-sync follower,
// ignores followers outside the ISR, and never moves back during a leadership.
func TestHighWatermarkIsMinimumOverISR(t *testing.T) {
	p := openTest(t, 1)
	now := time.Unix(1700000000, 0)
	p.BecomeLeader(1, 1, []int32{1, 2, 3}, []int32{1, 2}, now)
	res, err := p.Append(batch(t, 10), false, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Log().WaitDurable(context.Background(), res.LastOffset+1); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before the in-sync follower fetched, want 0", hw)
	}
	if _, err := p.FollowerFetched(3, 10, now); err != nil { // out of the ISR: no say
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d moved by a follower outside the ISR", hw)
	}
	if _, err := p.FollowerFetched(2, 4, now); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark %d, want 4 (the in-sync follower's end)", hw)
	}
	p.FollowerFetched(2, 2, now) // a stale fetch offset never moves it back
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark went back to %d", hw)
	}
}

// TestAcksAllWaitsForISR: an acks=all append is answered only once every ISR member has
// it, is refused below min.insync.replicas, and fails when leadership is lost.
func TestAcksAllWaitsForISR(t *testing.T) {
	p := openTest(t, 1)
	now := time.Now()
	p.BecomeLeader(1, 1, []int32{1, 2}, []int32{1, 2}, now)
	res, err := p.Append(batch(t, 3), false, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitCommitted(context.Background(), res.LastOffset+1, true, 2) }()
	select {
	case err := <-done:
		t.Fatalf("acks=all answered (%v) before the follower had the records", err)
	case <-time.After(100 * time.Millisecond):
	}
	p.FollowerFetched(2, res.LastOffset+1, now)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acks=all after the follower caught up: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acks=all still waiting after the follower caught up")
	}

	p.BecomeLeader(1, 2, []int32{1, 2}, []int32{1}, now) // the ISR shrank to the leader
	if _, err := p.Append(batch(t, 1), false, true, 2); !IsNotEnoughReplicas(err) {
		t.Fatalf("append with 1 in sync and min.insync.replicas=2: %v, want not enough replicas", err)
	}
	if _, err := p.Append(batch(t, 1), false, false, 2); err != nil {
		t.Fatalf("acks=1 append with a shrunk ISR: %v", err)
	}

	p.BecomeLeader(1, 3, []int32{1, 2}, []int32{1, 2}, now)
	res, err = p.Append(batch(t, 1), false, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- p.WaitCommitted(context.Background(), res.LastOffset+1, true, 2) }()
	time.Sleep(50 * time.Millisecond)
	p.BecomeFollower(2, 2, 4, []int32{1, 2}, []int32{2})
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("waiting acks=all when leadership moved: %v, want ErrNotLeader", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acks=all still waiting after leadership moved")
	}
	if _, err := p.Append(batch(t, 1), false, false, 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append on a follower: %v, want ErrNotLeader", err)
	}
}

// TestLaggingAndRejoin: a follower that does not reach the leader's end within the lag
// time is reported lagging; one outside the ISR that catches up is asked back in.
func TestLaggingAndRejoin(t *testing.T) {
	p := openTest(t, 1)
	start := time.Unix(1700000000, 0)
	p.BecomeLeader(1, 1, []int32{1, 2, 3}, []int32{1, 2, 3}, start)
	if _, err := p.Append(batch(t, 5), false, false, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitCommitted(context.Background(), 5, false, 1); err != nil {
		t.Fatal(err)
	}
	p.FollowerFetched(2, 5, start.Add(time.Second))
	p.FollowerFetched(3, 1, start.Add(time.Second))
	p.FollowerFetched(2, 5, start.Add(11*time.Second)) // keeps fetching at the end
	p.FollowerFetched(3, 2, start.Add(11*time.Second)) // keeps fetching, never at the end
	lagging := p.Lagging(start.Add(12*time.Second), 10*time.Second)
	if len(lagging) != 1 || lagging[0] != 3 {
		t.Fatalf("lagging = %v, want [3]", lagging)
	}
	p.BecomeLeader(1, 2, []int32{1, 2, 3}, []int32{1, 2}, start)
	if rejoin, _ := p.FollowerFetched(3, 2, start); rejoin {
		t.Fatal("a follower behind the high watermark was asked back into the ISR")
	}
	p.FollowerFetched(2, 5, start)
	if rejoin, _ := p.FollowerFetched(3, 5, start); !rejoin {
		t.Fatal("a caught-up follower was not asked back into the ISR")
	}
}

// TestNoAppendAfterBecomeFollower: appends racing a leadership change either land before
// BecomeFollower returns or are refused; none reaches the log after it, where a repair's
// truncation could meet a stray batch of the old epoch.
func TestNoAppendAfterBecomeFollower(t *testing.T) {
	for round := range 20 {
		p := openTest(t, 1)
		p.BecomeLeader(1, 1, []int32{1}, []int32{1}, time.Now())
		stop := make(chan struct{})
		done := make(chan int, 4)
		for range 4 {
			go func() {
				refused := 0
				for {
					select {
					case <-stop:
						done <- refused
						return
					default:
					}
					if _, err := p.Append(batch(t, 1), false, false, 1); errors.Is(err, ErrNotLeader) {
						refused++
					} else if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		p.BecomeFollower(2, 2, 2, []int32{1, 2}, []int32{2})
		end := p.Log().LogEndOffset()
		time.Sleep(5 * time.Millisecond)
		close(stop)
		refused := 0
		for range 4 {
			refused += <-done
		}
		if got := p.Log().LogEndOffset(); got != end {
			t.Fatalf("round %d: the log grew from %d to %d after BecomeFollower returned", round, end, got)
		}
		if refused == 0 {
			t.Fatalf("round %d: no append was refused after the leadership moved", round)
		}
	}
}
