package breaker

import (
	"log/slog"
	"testing"
	"time"
)

type stoppedClock struct{ t time.Time }

func (c stoppedClock) Now() time.Time { return c.t }

// trip opens b from Closed and returns the cool-down it chose.
func trip(t *testing.T, b *Breaker) time.Duration {
	t.Helper()
	for b.State() == Closed {
		tk, _ := b.Allow()
		b.Done(tk, false)
	}
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
	return time.Duration(b.until.Load() - b.now())
}

// reset ends b's cool-down at once and closes it with a successful probe,
// without moving its clock.
func reset(t *testing.T, b *Breaker) {
	t.Helper()
	b.mu.Lock()
	b.until.Store(b.now())
	b.mu.Unlock()
	tk, ok := b.Allow()
	if !ok || !tk.Probe() {
		t.Fatalf("no probe after the cool-down: %v, %v", tk, ok)
	}
	b.Done(tk, true)
}

func TestJitterExtremes(t *testing.T) {
	tests := []struct {
		jitter float64
		r      float64
		want   time.Duration
	}{
		{0.2, 0, 800 * time.Millisecond},
		{0.2, 0.5, time.Second},
		{0.2, 0.75, 1100 * time.Millisecond},
		{0.5, 0, 500 * time.Millisecond},
		{0, 0, time.Second},
		{0, 0.99, time.Second},
	}
	for _, tt := range tests {
		b := New(WithClock(stoppedClock{time.Unix(0, 0)}), WithJitter(tt.jitter), WithLogger(slog.New(slog.DiscardHandler)))
		b.rnd = func() float64 { return tt.r }
		if got := trip(t, b); got != tt.want {
			t.Errorf("jitter %v, rand %v: cool-down %v, want %v", tt.jitter, tt.r, got, tt.want)
		}
	}
}

// TestJitterBounds draws many cool-downs from the real random source: all
// must lie in [0.8 s, 1.2 s), and they must spread over that range.
func TestJitterBounds(t *testing.T) {
	b := New(WithClock(stoppedClock{time.Unix(0, 0)}), WithLogger(slog.New(slog.DiscardHandler)))
	lo, hi := time.Hour, time.Duration(0)
	for range 500 {
		d := trip(t, b)
		if d < 800*time.Millisecond || d >= 1200*time.Millisecond {
			t.Fatalf("cool-down %v outside [800ms, 1.2s)", d)
		}
		lo, hi = min(lo, d), max(hi, d)
		reset(t, b)
	}
	// With 500 uniform draws, P(none below 850 ms) = (7/8)^500 < 1e-28.
	if lo >= 850*time.Millisecond || hi < 1150*time.Millisecond {
		t.Fatalf("cool-downs spread only over [%v, %v]", lo, hi)
	}
}
