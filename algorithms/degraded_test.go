package algorithms

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// TestPauseCostsOnlyTheCallsDuringIt: with default options (FailClosed,
// the default timeout and breaker), Redis frozen for 200 ms under load
// costs at most the calls made during the pause, and nothing after: the
// breaker does not open on one stall, so there is no cascade of errors
// once Redis answers again.
func TestPauseCostsOnlyTheCallsDuringIt(t *testing.T) {
	srv, _, ks := realServer(t)
	lim := ratelimit.PerSecond(100_000)
	l := newLimiter(t, srv.Client(), lim, WithKeyspace(ks), WithLogger(quietLog))
	type call struct {
		start time.Time
		err   error
	}
	var mu sync.Mutex
	var calls []call
	var wg sync.WaitGroup
	begin := time.Now()
	stop := begin.Add(1500 * time.Millisecond)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []call
			for i := 0; i < 50_000 && time.Now().Before(stop); i++ {
				start := time.Now()
				_, err := l.Allow(context.Background(), "k")
				mine = append(mine, call{start, err})
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			calls = append(calls, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(500 * time.Millisecond)
	frozen := time.Now()
	srv.Freeze(200 * time.Millisecond)
	resumed := frozen.Add(200 * time.Millisecond)
	wg.Wait()
	var during, errsDuring, errsAfter, after int
	for _, c := range calls {
		switch {
		case c.start.Before(frozen.Add(-DefaultTimeout)):
			if c.err != nil {
				t.Errorf("call at %v before the pause: %v", c.start.Sub(begin), c.err)
			}
		case c.start.Before(resumed):
			during++
			if c.err != nil {
				errsDuring++
			}
		default:
			after++
			if c.err != nil {
				errsAfter++
				if errors.Is(c.err, ratelimit.ErrCircuitOpen) {
					t.Errorf("call %v after Redis answered again refused by the open breaker", c.start.Sub(resumed))
				}
			}
		}
	}
	t.Logf("%d calls during the pause (%d errors), %d after it (%d errors)", during, errsDuring, after, errsAfter)
	if during == 0 || after == 0 {
		t.Fatalf("calls during the pause %d, after %d: the load did not run", during, after)
	}
	if errsAfter != 0 {
		t.Errorf("%d errors from calls made after Redis answered again, want none", errsAfter)
	}
}
