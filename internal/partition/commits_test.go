package partition

import (
	"testing"
	"time"
)

func TestCommitLogFindsTheAdvanceThatPassedAnOffset(t *testing.T) {
	var c commitLog
	t0 := time.Unix(1000, 0)
	if _, ok := c.at(0); ok {
		t.Fatal("an empty log knows no commit")
	}
	c.add(10, t0)
	c.add(20, t0.Add(time.Millisecond))
	c.add(30, t0.Add(2*time.Millisecond))
	for _, tc := range []struct {
		offset int64
		want   time.Duration
		ok     bool
	}{
		{5, 0, false},                // committed by the first advance remembered: its predecessor is unknown
		{10, time.Millisecond, true}, // the mark 10 does not cover offset 10; 20 does
		{19, time.Millisecond, true},
		{20, 2 * time.Millisecond, true},
		{29, 2 * time.Millisecond, true},
		{30, 0, false}, // not committed yet
	} {
		got, ok := c.at(tc.offset)
		if ok != tc.ok || (ok && !got.Equal(t0.Add(tc.want))) {
			t.Errorf("at(%d) = %v, %v; want %v, %v", tc.offset, got.Sub(t0), ok, tc.want, tc.ok)
		}
	}
	// Wrap the ring: only the last commitLogSize advances are remembered.
	for i := int64(4); i <= commitLogSize+10; i++ {
		c.add(i*10, t0.Add(time.Duration(i-1)*time.Millisecond))
	}
	if _, ok := c.at(25); ok {
		t.Error("an evicted advance is still reported")
	}
	last := int64(commitLogSize+10) * 10
	if got, ok := c.at(last - 1); !ok || !got.Equal(t0.Add(time.Duration(commitLogSize+9)*time.Millisecond)) {
		t.Errorf("at(%d) = %v, %v after wrapping", last-1, got.Sub(t0), ok)
	}
	c.reset(last)
	if _, ok := c.at(last - 1); ok {
		t.Error("a reset log still reports commits")
	}
	c.add(last+5, t0)
	if got, ok := c.at(last); !ok || !got.Equal(t0) {
		t.Errorf("at(%d) = %v, %v: the advance after a reset passes what lies above the reset's mark", last, got, ok)
	}
	if _, ok := c.at(last - 1); ok {
		t.Error("an offset committed before the reset is reported as committed after it")
	}
}
