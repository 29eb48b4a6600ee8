package fallback

import (
	"testing"
	"time"
)

// TestBucketStartsEmptyAndEarnsAtItsRate: at 100/s a fresh bucket admits
// nothing at once, one token each 10 ms after, never more than the burst,
// and owes exactly what it admitted.
func TestBucketStartsEmptyAndEarnsAtItsRate(t *testing.T) {
	const ms = int64(time.Millisecond)
	b := New(0, -1)
	steps := []struct {
		at     int64
		n      int
		ok     bool
		retry  time.Duration
		owed   int64
		reason string
	}{
		{0, 1, false, 10 * time.Millisecond, 0, "empty at creation"},
		{5 * ms, 1, false, 5 * time.Millisecond, 0, "half a token"},
		{10 * ms, 1, true, 0, 1, "one token earned"},
		{10 * ms, 1, false, 10 * time.Millisecond, 1, "spent"},
		{1000 * ms, 5, true, 0, 6, "capped at the burst of 5"},
		{1000 * ms, 1, false, 10 * time.Millisecond, 6, "burst spent"},
		{2000 * ms, 6, false, 10 * time.Millisecond, 6, "n above the burst is never admitted"},
	}
	for i, s := range steps {
		ok, retry := b.Take(s.at, s.n, 100, 5)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d (%s): Take = %v, %v; want %v, %v", i, s.reason, ok, retry, s.ok, s.retry)
		}
		if owed, _, _ := b.Owed(s.at); owed != s.owed {
			t.Fatalf("step %d (%s): owed %d, want %d", i, s.reason, owed, s.owed)
		}
	}
	if owed, over, seen := b.Owed(2000 * ms); owed != 6 || over != 2*time.Second || seen != -1 {
		t.Fatalf("Owed = %d over %v, seen %d; want 6 over 2s, seen -1", owed, over, seen)
	}
	b.Charged(4)
	if owed, _, _ := b.Owed(0); owed != 2 {
		t.Fatalf("owed %d after charging 4 of 6, want 2", owed)
	}
	if got := b.Refund(5, 5); got != 2 {
		t.Fatalf("Refund(5) took back %d, want the 2 still owed", got)
	}
}
