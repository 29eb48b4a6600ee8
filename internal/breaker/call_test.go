package breaker

import (
	"context"
	"errors"
	"testing"

	"github.com/distributedratelimiter/ratelimit"
)

func TestCall(t *testing.T) {
	ctx := context.Background()
	b := New(WithConsecutiveFailures(2), WithFailureRatio(0, 1, 1))
	down := func(context.Context) (int, error) { return 0, context.DeadlineExceeded }
	canceled := func(context.Context) (int, error) { return 0, context.Canceled }

	// Cancelled calls say nothing about Redis: they never open it.
	for i := 0; i < 5; i++ {
		if _, err := Call(b, ctx, canceled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Call returned %v, want the fn's error", err)
		}
	}
	// Nor do calls whose caller's own deadline passed.
	expired, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	for i := 0; i < 5; i++ {
		_, _ = Call(b, expired, down)
	}
	if b.State() != Closed {
		t.Fatalf("state %v after cancelled and caller-expired calls, want closed", b.State())
	}
	for i := 0; i < 2; i++ {
		_, _ = Call(b, ctx, down)
	}
	if b.State() != Open {
		t.Fatalf("state %v after two failures, want open", b.State())
	}
	ran := false
	_, err := Call(b, ctx, func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || !errors.Is(err, ratelimit.ErrCircuitOpen) {
		t.Fatalf("open breaker: ran=%v err=%v, want no call and ErrCircuitOpen", ran, err)
	}
	var nilB *Breaker
	if v, err := Call(nilB, ctx, func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
		t.Fatalf("nil breaker: %v, %v; want the fn's result", v, err)
	}
}
