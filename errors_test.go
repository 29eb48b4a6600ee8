package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSentinelsAreDistinct(t *testing.T) {
	sentinels := []error{
		ErrRateLimitExceeded, ErrInvalidKey, ErrInvalidLimit, ErrInvalidN,
		ErrClosed, ErrStore, ErrBadReply,
	}
	for i, a := range sentinels {
		if !strings.HasPrefix(a.Error(), "ratelimit: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range sentinels {
			if got := errors.Is(a, b); got != (i == j) {
				t.Errorf("errors.Is(%q, %q) = %v", a, b, got)
			}
		}
	}
}

func TestExceededError(t *testing.T) {
	d := Decision{Limit: PerSecond(10), RetryAfter: 250 * time.Millisecond, ResetAfter: time.Second}
	var err error = &ExceededError{Key: "alice", Decision: d}
	wrapped := fmt.Errorf("handler: %w", err)

	for _, e := range []error{err, wrapped} {
		if !errors.Is(e, ErrRateLimitExceeded) {
			t.Errorf("errors.Is(%v, ErrRateLimitExceeded) = false", e)
		}
		for _, other := range []error{ErrStore, ErrBadReply, ErrInvalidKey, context.DeadlineExceeded} {
			if errors.Is(e, other) {
				t.Errorf("errors.Is(%v, %v) = true", e, other)
			}
		}
		var ex *ExceededError
		if !errors.As(e, &ex) {
			t.Fatalf("errors.As(%v, *ExceededError) = false", e)
		}
		if ex.Key != "alice" || ex.Decision != d {
			t.Errorf("errors.As gave %+v", ex)
		}
		var se *StoreError
		if errors.As(e, &se) {
			t.Errorf("errors.As(%v, *StoreError) = true", e)
		}
	}

	msg := err.Error()
	for _, want := range []string{`"alice"`, "10/1s burst 10", "250ms"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q, want it to contain %q", msg, want)
		}
	}
}

func TestStoreError(t *testing.T) {
	inner := errors.New("dial tcp 127.0.0.1:1: connection refused")
	badReply := fmt.Errorf("%w: want 4 integers, got 3", ErrBadReply)

	tests := []struct {
		name    string
		inner   error
		matches []error // besides ErrStore and inner itself
		not     []error
	}{
		{"network", inner, nil, []error{ErrBadReply, ErrRateLimitExceeded, context.DeadlineExceeded}},
		{"bad reply", badReply, []error{ErrBadReply}, []error{ErrRateLimitExceeded}},
		{"deadline", context.DeadlineExceeded, []error{context.DeadlineExceeded}, []error{ErrBadReply, context.Canceled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se := &StoreError{Op: "gcra", Key: "bob", Err: tt.inner}
			if se.Unwrap() != tt.inner {
				t.Errorf("Unwrap() = %v, want %v", se.Unwrap(), tt.inner)
			}
			wrapped := fmt.Errorf("serve: %w", se)
			for _, e := range []error{se, wrapped} {
				for _, target := range append([]error{ErrStore, tt.inner}, tt.matches...) {
					if !errors.Is(e, target) {
						t.Errorf("errors.Is(%v, %v) = false", e, target)
					}
				}
				for _, target := range tt.not {
					if errors.Is(e, target) {
						t.Errorf("errors.Is(%v, %v) = true", e, target)
					}
				}
				var got *StoreError
				if !errors.As(e, &got) || got != se {
					t.Errorf("errors.As(%v, *StoreError) = %v", e, got)
				}
			}
			want := fmt.Sprintf("ratelimit: gcra \"bob\": %v", tt.inner)
			if se.Error() != want {
				t.Errorf("Error() = %q, want %q", se.Error(), want)
			}
		})
	}
}
