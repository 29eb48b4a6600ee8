package limitertest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// recorder is a tester that keeps the errors reported to it.
type recorder struct {
	*testing.T
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestNoLeak checks that a scenario which leaves a goroutine running
// after its cleanups is reported, by name, and one that stops its
// goroutines in a cleanup is not.
func TestNoLeak(t *testing.T) {
	stop := make(chan struct{})
	var leaked sync.WaitGroup
	defer leaked.Wait()
	defer close(stop)
	r := &recorder{T: t}
	noLeak(r, "leaky", time.Second, func(*testing.T) { leaked.Go(func() { <-stop }) })
	if len(r.errs) != 1 || !strings.HasPrefix(r.errs[0], "leaky: ") {
		t.Errorf("a scenario that left a goroutine: errors %q, want one naming the scenario", r.errs)
	}

	r = &recorder{T: t}
	noLeak(r, "tidy", time.Second, func(t *testing.T) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-done })
		t.Cleanup(func() { close(done); wg.Wait() })
	})
	if len(r.errs) != 0 {
		t.Errorf("a scenario that stopped its goroutine in a cleanup: errors %q, want none", r.errs)
	}
}

// TestClock steps a Clock from its zero value and from NewClock, and
// reads it while another goroutine moves it (for -race).
func TestClock(t *testing.T) {
	var zero Clock
	if got := zero.Now(); !got.Equal(time.Unix(0, 0)) {
		t.Errorf("zero Clock reads %v, want the Unix epoch", got)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	c := NewClock(t0)
	steps := []struct {
		move func()
		want time.Time
	}{
		{func() {}, t0},
		{func() { c.Advance(1500 * time.Millisecond) }, t0.Add(1500 * time.Millisecond)},
		{func() { c.Advance(-time.Second) }, t0.Add(500 * time.Millisecond)},
		{func() { c.Set(t0.Add(time.Hour)) }, t0.Add(time.Hour)},
	}
	for i, s := range steps {
		s.move()
		if got := c.Now(); !got.Equal(s.want) {
			t.Errorf("step %d: Now() = %v, want %v", i, got, s.want)
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			c.Advance(time.Millisecond)
		}
	})
	prev := c.Now()
	for range 1000 {
		now := c.Now()
		if now.Before(prev) {
			t.Fatalf("Now went back from %v to %v while the clock only advanced", prev, now)
		}
		prev = now
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("after 1000 advances of 1 ms: %v, want %v", got, want)
	}
}
