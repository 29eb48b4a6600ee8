package reject_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/reject"
)

// step is one scripted answer of a scripted limiter.
type step struct {
	d   ratelimit.Decision
	err error
}

func allow() step { return step{d: ratelimit.Decision{Allowed: true, Limit: oneSecond, Remaining: 1}} }

func deny(retry time.Duration) step {
	return step{d: ratelimit.Decision{Limit: oneSecond, RetryAfter: retry, ResetAfter: retry}}
}

var oneSecond = ratelimit.PerSecond(1)

// scripted is a fake ratelimit.Limiter that answers AllowN with its steps
// in order and records when it was called. Like a real limiter it fails
// with the context's error once the context is done.
type scripted struct {
	t     *testing.T
	mu    sync.Mutex // protects the fields below
	steps []step
	calls []time.Time
}

var _ ratelimit.Limiter = (*scripted)(nil)

func newScripted(t *testing.T, steps ...step) *scripted {
	return &scripted{t: t, steps: steps}
}

func (s *scripted) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return s.AllowN(ctx, key, 1)
}

func (s *scripted) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if err := ctx.Err(); err != nil {
		return ratelimit.Decision{}, err
	}
	if len(s.steps) == 0 {
		s.t.Errorf("AllowN(%q, %d) called after the script ended", key, n)
		return ratelimit.Decision{}, errors.New("script ended")
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	return st.d, st.err
}

// callOffsets returns the times of the calls relative to start.
func (s *scripted) callOffsets(start time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, c := range s.calls {
		out = append(out, c.Sub(start))
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEnforceReject(t *testing.T) {
	storeErr := &ratelimit.StoreError{Op: "token_bucket", Key: "k", Err: errors.New("boom")}
	tests := []struct {
		name     string
		step     step
		exceeded bool
		err      error
	}{
		{"allowed", allow(), false, nil},
		{"denied", deny(time.Second), true, nil},
		{"store error", step{err: storeErr}, false, storeErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newScripted(t, tt.step)
			d, err := reject.Enforce(context.Background(), l, "k", 1, reject.Reject())
			if d != tt.step.d {
				t.Errorf("decision = %+v, want %+v", d, tt.step.d)
			}
			if tt.exceeded {
				var ex *ratelimit.ExceededError
				if !errors.As(err, &ex) || !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
					t.Fatalf("err = %v, want an *ExceededError", err)
				}
				if ex.Key != "k" || ex.Decision != tt.step.d {
					t.Errorf("ExceededError = %+v", ex)
				}
				return
			}
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

// enforceWait is Enforce with the Wait strategy bounded by ctx alone.
func enforceWait(ctx context.Context, l ratelimit.Limiter, key string, n int) (ratelimit.Decision, error) {
	return reject.Enforce(ctx, l, key, n, reject.Wait(reject.WithMaxWait(ratelimit.NoBound)))
}

// The Enforce-with-Wait tests run in a synctest bubble: time is fake and advances only
// when every goroutine is blocked, so the sleeps are exact and instant.

func TestEnforceWaitRetriesAfterRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newScripted(t, deny(100*time.Millisecond), deny(250*time.Millisecond), allow())
		start := time.Now()
		d, err := enforceWait(context.Background(), l, "k", 1)
		if err != nil || !d.Allowed {
			t.Fatalf("Wait = %+v, %v; want allowed", d, err)
		}
		want := []time.Duration{0, 100 * time.Millisecond, 350 * time.Millisecond}
		if got := l.callOffsets(start); !equalDurations(got, want) {
			t.Fatalf("AllowN called at %v, want %v", got, want)
		}
	})
}

func TestEnforceWaitZeroRetryAfterDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newScripted(t, deny(0), deny(0), allow())
		start := time.Now()
		if _, err := enforceWait(context.Background(), l, "k", 1); err != nil {
			t.Fatal(err)
		}
		got := l.callOffsets(start)
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("AllowN called at %v: no pause after a denial", got)
			}
		}
	})
}

func TestEnforceWaitCancelledWhileSleeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newScripted(t, deny(time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		d, err := enforceWait(ctx, l, "k", 1)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d.Allowed || d.RetryAfter != time.Hour {
			t.Errorf("decision = %+v, want the denial", d)
		}
		if elapsed := time.Since(start); elapsed != 10*time.Millisecond {
			t.Errorf("Wait returned after %v, want 10ms", elapsed)
		}
	})
}

func TestEnforceWaitAlreadyCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newScripted(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := enforceWait(ctx, l, "k", 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestEnforceWaitDeadlineBeforeRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newScripted(t, deny(time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		d, err := enforceWait(ctx, l, "k", 1)
		var ex *ratelimit.ExceededError
		if !errors.As(err, &ex) {
			t.Fatalf("err = %v, want an *ExceededError", err)
		}
		if ex.Decision != d || d.RetryAfter != time.Second || ex.Key != "k" {
			t.Errorf("ExceededError = %+v, decision %+v", ex, d)
		}
		if elapsed := time.Since(start); elapsed != 0 {
			t.Errorf("Wait slept %v before giving up", elapsed)
		}
	})
}

func TestEnforceWaitDeadlineAfterSomeRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := 200 * time.Millisecond
		l := newScripted(t, deny(r), deny(r), deny(r))
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := enforceWait(ctx, l, "k", 1)
		if !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
			t.Fatalf("err = %v, want ErrRateLimitExceeded", err)
		}
		// Retries at 200 ms and 400 ms; at 400 ms only 100 ms remain.
		want := []time.Duration{0, r, 2 * r}
		if got := l.callOffsets(start); !equalDurations(got, want) {
			t.Fatalf("AllowN called at %v, want %v", got, want)
		}
		if elapsed := time.Since(start); elapsed != 2*r {
			t.Errorf("Wait returned after %v, want %v", elapsed, 2*r)
		}
	})
}

func TestEnforceWaitReturnsCheckErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		storeErr := &ratelimit.StoreError{Op: "gcra", Key: "k", Err: errors.New("boom")}
		l := newScripted(t, deny(10*time.Millisecond), step{err: storeErr})
		_, err := enforceWait(context.Background(), l, "k", 1)
		if err != storeErr {
			t.Fatalf("err = %v, want the store error", err)
		}
	})
}

// TestEnforceWaitRealTime runs Wait once on the real clock, with a lower bound
// only, so that a slow machine cannot fail it.
func TestEnforceWaitRealTime(t *testing.T) {
	l := newScripted(t, deny(20*time.Millisecond), allow())
	start := time.Now()
	d, err := enforceWait(context.Background(), l, "k", 1)
	if err != nil || !d.Allowed {
		t.Fatalf("Wait = %+v, %v", d, err)
	}
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v, before the 20ms RetryAfter", elapsed)
	}
}
