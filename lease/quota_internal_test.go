package lease

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// lateBucket takes the tokens, then, once armed, holds the reply until
// release closes.
type lateBucket struct {
	*fakeBucket
	hold    chan struct{}
	release chan struct{}
	armed   bool
}

func (b *lateBucket) TakeUpTo(ctx context.Context, k string, lim ratelimit.Limit, n int, c algorithms.Charge) (algorithms.Grant, error) {
	g, err := b.fakeBucket.TakeUpTo(ctx, k, lim, n, c)
	if b.armed {
		b.armed = false
		close(b.hold)
		<-b.release
	}
	return g, err
}

// TestResetDropsRefillInFlight: a refill whose script took tokens from the
// bucket before a Reset, and whose reply lands after it, adds nothing: its
// tokens were the old bucket's. One instance then admits at most the
// burst after the reset.
func TestResetDropsRefillInFlight(t *testing.T) {
	const burst = 100
	lim := ratelimit.PerSecond(1).WithBurst(burst) // earns ~nothing during the test
	b := &lateBucket{fakeBucket: &fakeBucket{tokens: burst}, hold: make(chan struct{}), release: make(chan struct{})}
	clk := newFakeClock()
	l, err := New(nil, lim, withBucket(b), WithClock(clk), WithLeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close(context.Background()) }()
	ctx := context.Background()
	if d, _ := l.Allow(ctx, "k"); !d.Allowed {
		t.Fatal("the first request was denied")
	}
	e := l.entries.Load("k")
	b.armed = true
	done := make(chan error)
	go func() { done <- l.refill(ctx, e, 20, time.Second, true, true) }()
	<-b.hold // Redis took 20 tokens from the old bucket; reply not yet here
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	<-done
	admitted := 0
	for range 3 * burst {
		if d, _ := l.Allow(ctx, "k"); d.Allowed {
			admitted++
		}
	}
	t.Logf("one instance admitted %d after Reset (burst %d)", admitted, burst)
	if admitted > burst {
		t.Errorf("admitted %d > burst %d after Reset with no other instance", admitted, burst)
	}
}

// TestFailedResetKeepsWhatIsOwed: a Reset that Redis does not take changes
// nothing locally: the admissions the fallback made while Redis was down
// are still charged once it answers.
func TestFailedResetKeepsWhatIsOwed(t *testing.T) {
	b := &fakeBucket{tokens: 1000}
	lim := ratelimit.PerSecond(100).WithBurst(1000)
	l, clk := newTestLimiter(t, b, lim)
	ctx := context.Background()
	_, _ = l.Allow(ctx, "k")
	waitRefills(t, l)
	e := l.entries.Load("k")
	e.mu.Lock()
	e.expire(1 << 62) // no leased tokens left: the policy decides
	e.mu.Unlock()
	b.mu.Lock()
	b.err = &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	b.mu.Unlock()
	admitted := 0
	for range 200 {
		clk.Advance(10 * time.Millisecond)
		d, _ := l.Allow(ctx, "k")
		if d.Allowed && d.Source == ratelimit.SourceFallback {
			admitted++
		}
	}
	waitRefills(t, l)
	e.mu.Lock()
	var owed int64
	if fb := e.fallbackBucket(); fb != nil {
		owed, _, _ = fb.Owed(l.now())
	}
	e.mu.Unlock()
	err := l.Reset(ctx, "k")
	t.Logf("fallback admitted %d, owed %d; Reset: %v", admitted, owed, err)
	b.mu.Lock()
	b.err = nil
	b.mu.Unlock()
	clk.Advance(time.Second)
	for range 5 {
		clk.Advance(200 * time.Millisecond)
		_, _ = l.Allow(ctx, "k")
		waitRefills(t, l)
	}
	b.mu.Lock()
	charged := b.charged
	b.mu.Unlock()
	t.Logf("charged to Redis after recovery: %d (Redis was never reset)", charged)
	if err == nil {
		t.Fatal("Reset succeeded while the bucket fails")
	}
	if owed == 0 || charged < owed {
		t.Errorf("owed %d, charged %d: a failed Reset forgot what the fallback admitted", owed, charged)
	}
}
