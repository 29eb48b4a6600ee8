package lease_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// TestMain fails the package if any goroutine outlives its tests: every
// limiter a test starts must be closed by its cleanups, and Close must
// stop the janitor and every refill (see also limitertest.Main).
func TestMain(m *testing.M) { limitertest.Main(m) }

// quotaless gives a test Bucket the Peek, Charge and Reset it has no use
// for: each fails with errors.ErrUnsupported.
type quotaless struct{}

func (quotaless) Peek(context.Context, string, ratelimit.Limit) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.ErrUnsupported
}

func (quotaless) Charge(context.Context, string, ratelimit.Limit, int) error {
	return errors.ErrUnsupported
}

func (quotaless) Reset(context.Context, string, ratelimit.Limit) error {
	return errors.ErrUnsupported
}

// stuckBucket is a Bucket whose calls block until their context ends, as
// a stalled Redis behind a client that honours deadlines would.
type stuckBucket struct{ quotaless }

func (b *stuckBucket) TakeUpTo(ctx context.Context, _ string, _ ratelimit.Limit, _ int, _ algorithms.Charge) (algorithms.Grant, error) {
	<-ctx.Done()
	return algorithms.Grant{}, ctx.Err()
}

func (b *stuckBucket) Return(ctx context.Context, _ string, _ ratelimit.Limit, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestCloseReleasesGoroutines closes a limiter while refills are blocked
// in its bucket and callers wait for them: Close returns, the callers get
// an error, and no goroutine the limiter started is left, neither the
// janitor nor a refill nor its call.
func TestCloseReleasesGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := lease.New(nil, ratelimit.PerSecond(100), lease.WithBucket(&stuckBucket{}),
		lease.WithRefillTimeout(time.Minute), lease.WithMaxWait(time.Minute), lease.WithLogger(quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	var callers sync.WaitGroup
	type result struct {
		d   ratelimit.Decision
		err error
	}
	results := make(chan result, 8)
	for _, key := range []string{"a", "b", "c", "a", "b", "c", "d", "e"} {
		callers.Go(func() {
			d, err := l.Allow(context.Background(), key)
			results <- result{d, err}
		})
	}
	time.Sleep(50 * time.Millisecond) // let the callers wait on their refills
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with refills blocked; it should cancel them", took)
	}
	callers.Wait()
	close(results)
	for r := range results {
		// A caller waiting on a refill that Close cancelled gets ErrClosed,
		// not the failure policy's decision.
		if !errors.Is(r.err, ratelimit.ErrClosed) {
			t.Errorf("a caller waiting on a refill when Close ran: %+v, %v; want ErrClosed", r.d, r.err)
		}
	}
	if _, err := l.Allow(context.Background(), "a"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Allow after Close: %v, want ErrClosed", err)
	}
}
