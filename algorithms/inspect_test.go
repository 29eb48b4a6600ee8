package algorithms

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// quotaAlgorithms are every Algorithm with the Limit it is tested with:
// All with one limit, and a calendar window.
func quotaAlgorithms(t *testing.T, lim ratelimit.Limit) []struct {
	alg Algorithm
	lim ratelimit.Limit
} {
	cal := CalendarWindow{Period: Month, Location: zone(t, "Europe/Paris")}
	out := []struct {
		alg Algorithm
		lim ratelimit.Limit
	}{}
	for _, a := range All {
		out = append(out, struct {
			alg Algorithm
			lim ratelimit.Limit
		}{a, lim})
	}
	return append(out, struct {
		alg Algorithm
		lim ratelimit.Limit
	}{cal, cal.Limit(lim.Burst)})
}

// TestPeekResetValidation checks that Peek and Reset refuse the keys
// AllowN refuses, with the same sentinel and before calling Redis; that a
// Redis failure is a StoreError naming the operation; and that an
// Algorithm that cannot inspect says so.
func TestPeekResetValidation(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	l := newLimiter(t, rdb, ratelimit.PerSecond(10).WithBurst(5))
	calls := map[string]func(key string) error{
		"Peek":  func(key string) error { _, err := l.Peek(t.Context(), key); return err },
		"Reset": func(key string) error { return l.Reset(t.Context(), key) },
	}
	for name, call := range calls {
		for _, key := range []string{"", strings.Repeat("k", ratelimit.MaxKeyLen+1)} {
			if err := call(key); !errors.Is(err, ratelimit.ErrInvalidKey) {
				t.Errorf("%s(key of %d bytes): %v, want ErrInvalidKey", name, len(key), err)
			}
		}
	}
	if n := rdb.calls.Load(); n != 0 {
		t.Fatalf("invalid calls reached Redis %d times", n)
	}
	for name, call := range calls {
		if err := call(strings.Repeat("k", ratelimit.MaxKeyLen)); err != nil {
			t.Errorf("%s(key of MaxKeyLen bytes): %v", name, err)
		}
	}

	failing := newLimiter(t, &replyScripter{err: errors.New("boom")}, ratelimit.PerSecond(1), WithCircuitBreaker(false))
	if _, err := failing.Peek(t.Context(), "k"); !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "gcra peek") {
		t.Errorf("Peek on a failing Redis: %v, want a StoreError of gcra peek", err)
	}
	if err := failing.Reset(t.Context(), "k"); !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "gcra reset") {
		t.Errorf("Reset on a failing Redis: %v, want a StoreError of gcra reset", err)
	}
	bad := newLimiter(t, &replyScripter{val: []any{int64(7), int64(0), int64(0), int64(0)}}, ratelimit.PerSecond(1))
	if _, err := bad.Peek(t.Context(), "k"); !errors.Is(err, ratelimit.ErrBadReply) {
		t.Errorf("Peek with a malformed reply: %v, want ErrBadReply", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Peek(ctx, "k"); !errors.Is(err, context.Canceled) || errors.Is(err, ratelimit.ErrStore) {
		t.Errorf("Peek with a cancelled context: %v, want context.Canceled", err)
	}

	plain := newLimiter(t, rdb, ratelimit.PerSecond(1), WithAlgorithm(noRefund{GCRA}))
	if _, err := plain.Peek(t.Context(), "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Peek with an algorithm that cannot: %v, want errors.ErrUnsupported", err)
	}
	if err := plain.Reset(t.Context(), "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Reset with an algorithm that cannot: %v, want errors.ErrUnsupported", err)
	}
}

// TestPeekReset checks, for every algorithm on miniredis, that Peek
// reports what AllowN spent without spending, that a peek after the burst
// is the denial a request would get, and that Reset gives the whole burst
// back.
func TestPeekReset(t *testing.T) {
	lim := ratelimit.PerHour(4)
	for _, x := range quotaAlgorithms(t, lim) {
		t.Run("alg="+x.alg.Name(), func(t *testing.T) {
			_, rdb := miniServer(t, t0)
			clk := limitertest.NewClock(time.UnixMicro(t0))
			l := newLimiter(t, rdb, x.lim, WithAlgorithm(x.alg), WithClock(clk))
			ctx := t.Context()
			d, err := l.Peek(ctx, "k")
			full := ratelimit.Decision{Allowed: true, Limit: x.lim, Remaining: 4, Source: ratelimit.SourceRedis}
			if err != nil || d != full {
				t.Fatalf("Peek of a new key: %+v, %v; want %+v", d, err, full)
			}
			spent, err := l.AllowN(ctx, "k", 3)
			if err != nil || !spent.Allowed {
				t.Fatal(spent, err)
			}
			for range 2 { // peeking spends nothing
				d, err = l.Peek(ctx, "k")
				if err != nil || d != spent {
					t.Fatalf("Peek after AllowN(3): %+v, %v; want AllowN's %+v", d, err, spent)
				}
			}
			if _, err := l.Allow(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			denied, err := l.Allow(ctx, "k")
			if err != nil || denied.Allowed {
				t.Fatalf("after the burst: %+v, %v", denied, err)
			}
			if d, err = l.Peek(ctx, "k"); err != nil || d != denied {
				t.Fatalf("Peek after the burst: %+v, %v; want the denial %+v", d, err, denied)
			}
			if err := l.Reset(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if d, err = l.Peek(ctx, "k"); err != nil || d != full {
				t.Fatalf("Peek after Reset: %+v, %v; want %+v", d, err, full)
			}
			if d, err := l.AllowN(ctx, "k", 4); err != nil || !d.Allowed {
				t.Fatalf("AllowN(burst) after Reset: %+v, %v", d, err)
			}
			if err := l.Reset(ctx, "missing"); err != nil {
				t.Fatalf("Reset of a missing key: %v", err)
			}
		})
	}
}

// TestRealRedisPeekReset runs three limiters of each algorithm on a real
// redis-server, as three instances would: what one spends the others'
// Peek sees at once, and after one resets the key, each of them finds it
// full.
func TestRealRedisPeekReset(t *testing.T) {
	srv, _, ks := realServer(t)
	lim := ratelimit.Per(6, 24*time.Hour)
	skipNearMidnight(t, serverNow(t, srv.Client()))
	for _, x := range quotaAlgorithms(t, lim) {
		t.Run("alg="+x.alg.Name(), func(t *testing.T) {
			if cal, ok := x.alg.(CalendarWindow); ok {
				skipNearWindowEnd(t, cal, serverNow(t, srv.Client()))
			}
			ctx := t.Context()
			ls := make([]*Limiter, 3)
			for i := range ls {
				ls[i] = newLimiter(t, srv.Client(), x.lim, WithAlgorithm(x.alg), WithKeyspace(ks))
			}
			key := "inspect-" + x.alg.Name()
			for i, l := range ls {
				if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
					t.Fatalf("instance %d: %+v, %v", i, d, err)
				}
				for j, other := range ls {
					d, err := other.Peek(ctx, key)
					if err != nil || !d.Allowed || d.Remaining != 5-i || d.ResetAfter <= 0 {
						t.Fatalf("instance %d after %d requests: Peek %+v, %v; want %d left", j, i+1, d, err, 5-i)
					}
				}
			}
			if d, err := ls[0].AllowN(ctx, key, 3); err != nil || !d.Allowed {
				t.Fatalf("AllowN(3): %+v, %v", d, err)
			}
			d, err := ls[2].Peek(ctx, key)
			if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 {
				t.Fatalf("Peek of a spent key: %+v, %v", d, err)
			}
			if err := ls[1].Reset(ctx, key); err != nil {
				t.Fatal(err)
			}
			for j, l := range ls {
				d, err := l.Peek(ctx, key)
				if err != nil || !d.Allowed || d.Remaining != 6 || d.ResetAfter != 0 || d.RetryAfter != 0 {
					t.Fatalf("instance %d after Reset: Peek %+v, %v", j, d, err)
				}
			}
			if admitted := limitertest.Admitted(t, key, 8, ls...); admitted != 6 {
				t.Fatalf("after Reset, %d admitted of 8, want the burst, 6", admitted)
			}
		})
	}
}
