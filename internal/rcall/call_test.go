package rcall

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
)

func TestCall(t *testing.T) {
	ctx := context.Background()
	b := breaker.New(breaker.WithConsecutiveFailures(2), breaker.WithFailureRatio(0, 1, 1))
	down := func(context.Context) (int, error) { return 0, &net.OpError{Op: "read", Err: errors.New("i/o timeout")} }
	canceled := func(context.Context) (int, error) { return 0, context.Canceled }

	// Cancelled calls say nothing about Redis: they never open it.
	for i := 0; i < 5; i++ {
		if _, err := Call(ctx, b, 0, true, canceled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Call returned %v, want the fn's error", err)
		}
	}
	// Nor do calls whose caller's own deadline passed, even when fn
	// returns a socket error before ctx notices (go-redis with
	// ContextTimeoutEnabled does): the caller gets its context's error.
	for i := 0; i < 5; i++ {
		dl, cancel := context.WithDeadline(ctx, time.Now().Add(time.Millisecond))
		_, err := Call(dl, b, 0, true, func(context.Context) (int, error) {
			time.Sleep(2 * time.Millisecond)
			return down(ctx)
		})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("caller deadline passed: got %v, want context.DeadlineExceeded", err)
		}
	}
	if b.State() != breaker.Closed {
		t.Fatalf("state %v after cancelled and caller-expired calls, want closed", b.State())
	}
	for i := 0; i < 2; i++ {
		_, _ = Call(ctx, b, 0, true, down)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after two failures, want open", b.State())
	}
	ran := false
	_, err := Call(ctx, b, 0, true, func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || !errors.Is(err, ratelimit.ErrCircuitOpen) {
		t.Fatalf("open breaker: ran=%v err=%v, want no call and ErrCircuitOpen", ran, err)
	}
	if v, err := Call(ctx, nil, 0, true, func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
		t.Fatalf("nil breaker: %v, %v; want the fn's result", v, err)
	}
}

// TestCallOwnTimeoutIsAFailure: a call cut by its own timeout, while the
// caller would still wait, is Redis being too slow: it counts.
func TestCallOwnTimeoutIsAFailure(t *testing.T) {
	b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithFailureRatio(0, 1, 1))
	slow := func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }
	if _, err := Call(context.Background(), b, time.Millisecond, true, slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the call's own deadline", err)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after a call that hit its own timeout, want open", b.State())
	}
}
