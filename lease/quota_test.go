package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// drain calls Allow on the instances in turn until each has denied three
// times in a row, and returns how many they admitted: all a key has left,
// in Redis and in leases, when the limit does not refill meanwhile.
func drain(t *testing.T, ls []*lease.Limiter, key string) int {
	t.Helper()
	ctx := context.Background()
	admitted := 0
	misses := make([]int, len(ls))
	for round := 0; round < 10_000; round++ {
		done := true
		for i, l := range ls {
			if misses[i] >= 3 {
				continue
			}
			done = false
			d, err := l.Allow(ctx, key)
			if err != nil {
				t.Fatalf("Allow: %v", err)
			}
			if d.Allowed {
				admitted++
				misses[i] = 0
			} else {
				misses[i]++
			}
		}
		if done {
			return admitted
		}
	}
	t.Fatal("the key never ran out")
	return 0
}

// TestPeekCountsOwnLease: Peek spends nothing, counts what Redis holds
// plus this instance's leased tokens, and counts other instances' leases
// as spent.
func TestPeekCountsOwnLease(t *testing.T) {
	srv := redistest.Start(t)
	lim := ratelimit.PerHour(10) // no refill during the test
	ls := defaultInstances(t, srv, 2, lim)
	a, b := ls[0], ls[1]
	ctx := context.Background()
	for range 3 {
		if d, err := a.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("Allow: %+v, %v", d, err)
		}
	}
	lease.WaitRefills(t, a) // a refill in flight would make the peek count low
	for range 3 {           // peeking spends nothing
		d, err := a.Peek(ctx, "k")
		if err != nil || d.Remaining != 7 || !d.Allowed || d.RetryAfter != 0 || d.Source != ratelimit.SourceRedis {
			t.Fatalf("a.Peek = %+v, %v; want 7 left, allowed, from Redis", d, err)
		}
	}
	held := int(a.Stats().TokensHeld)
	if d, err := b.Peek(ctx, "k"); err != nil || d.Remaining != 7-held {
		t.Fatalf("b.Peek = %+v, %v; want %d left (a holds %d)", d, err, 7-held, held)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := b.Peek(ctx, "k"); err != nil || d.Remaining != 7 {
		t.Fatalf("after a's Close, b.Peek = %+v, %v; want 7 left", d, err)
	}
	if got := drain(t, ls[1:], "k"); got != 7 {
		t.Fatalf("b admitted %d after the peeks, want 7", got)
	}
	d, err := b.Peek(ctx, "k")
	if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 {
		t.Fatalf("Peek of a spent key = %+v, %v; want denied with a RetryAfter", d, err)
	}
	if _, err := b.Peek(ctx, ""); !errors.Is(err, ratelimit.ErrInvalidKey) {
		t.Fatalf("Peek of an empty key: %v, want ErrInvalidKey", err)
	}
	if _, err := a.Peek(ctx, "k"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Fatalf("Peek after Close: %v, want ErrClosed", err)
	}
}

// TestSettleAcrossInstances: on three instances sharing one key, a settle
// for more than was reserved leaves the key that much shorter for all of
// them, into debt when it exceeds what is left, and one for less gives the
// difference back.
func TestSettleAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	lim := ratelimit.PerHour(10) // no refill during the test
	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		reserved, actual int
		want             int // what the instances admit after the settle
	}{
		{"more", 1, 5, 10 - 5},
		{"exact", 2, 2, 10 - 2},
		{"less", 5, 1, 10 - 1},
		{"debt", 1, 25, 0},
		{"nothing reserved", 0, 3, 10 - 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := defaultInstances(t, srv, 3, lim)
			key := "settle-" + tc.name
			if tc.reserved > 0 {
				if d, err := ls[0].AllowN(ctx, key, tc.reserved); err != nil || !d.Allowed {
					t.Fatalf("AllowN(%d): %+v, %v", tc.reserved, d, err)
				}
			}
			if err := ls[0].SettleN(ctx, key, tc.reserved, tc.actual); err != nil {
				t.Fatalf("SettleN(%d, %d): %v", tc.reserved, tc.actual, err)
			}
			if got := drain(t, ls, key); got != tc.want {
				t.Fatalf("after SettleN(%d, %d) the instances admitted %d, want %d", tc.reserved, tc.actual, got, tc.want)
			}
		})
	}
	t.Run("debt is paid off", func(t *testing.T) {
		// 3 600 tokens an hour: one a millisecond... too fast to count
		// exactly; a debt shows as a peek below zero instead: the key
		// stays empty while it is paid off.
		ls := defaultInstances(t, srv, 2, lim)
		if err := ls[0].SettleN(ctx, "debt2", 0, 15); err != nil {
			t.Fatal(err)
		}
		d, err := ls[1].Peek(ctx, "debt2")
		if err != nil || d.Allowed || d.Remaining != 0 {
			t.Fatalf("Peek in debt = %+v, %v; want nothing left", d, err)
		}
		// 5 tokens of debt at 10 an hour: about 30 minutes until one.
		if d.RetryAfter < 30*60e9 {
			t.Fatalf("RetryAfter %v in a debt of 5: want at least 30 minutes", d.RetryAfter)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		l := defaultInstances(t, srv, 1, lim)[0]
		for _, c := range [][2]int{{-1, 1}, {11, 1}, {1, -1}, {0, ratelimit.MaxRate + 1}} {
			if err := l.SettleN(ctx, "k", c[0], c[1]); !errors.Is(err, ratelimit.ErrInvalidN) {
				t.Errorf("SettleN(%d, %d): %v, want ErrInvalidN", c[0], c[1], err)
			}
		}
		if err := l.SettleN(ctx, "", 0, 1); !errors.Is(err, ratelimit.ErrInvalidKey) {
			t.Errorf("SettleN of an empty key: %v, want ErrInvalidKey", err)
		}
	})
}

// warm calls Allow on l until it holds leased tokens for key, and returns
// how many it holds.
func warm(t *testing.T, l *lease.Limiter, key string) int64 {
	t.Helper()
	for range 30 {
		if d, err := l.Allow(context.Background(), key); err != nil || !d.Allowed {
			t.Fatalf("Allow while warming: %+v, %v", d, err)
		}
		if h := l.Stats().TokensHeld; h > 0 {
			return h
		}
	}
	t.Fatal("30 quick requests leased no spare tokens")
	return 0
}

// TestResetAcrossInstances: after a Reset on one of three instances the
// key admits its whole burst again, plus at most what the other instances
// held then; once the lease TTL has passed, the others hold nothing and
// the key admits exactly a fresh burst.
func TestResetAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	lim := ratelimit.PerHour(36).WithBurst(100) // no whole token refills during the test
	ctx := context.Background()
	t.Run("old leases are bounded", func(t *testing.T) {
		ls := defaultInstances(t, srv, 3, lim)
		warm(t, ls[1], "r")
		warm(t, ls[2], "r")
		warm(t, ls[0], "r")
		for _, l := range ls {
			lease.WaitRefills(t, l)
		}
		others := ls[1].Stats().TokensHeld + ls[2].Stats().TokensHeld
		before := ls[0].Stats()
		if err := ls[0].Reset(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if s := ls[0].Stats(); s.TokensHeld != 0 || s.TokensServed != before.TokensServed {
			t.Fatalf("after the reset the instance holds %d tokens and has served %d (%d before, holding %d): dropped tokens are not served",
				s.TokensHeld, s.TokensServed, before.TokensServed, before.TokensHeld)
		}
		if d, err := ls[0].Peek(ctx, "r"); err != nil || d.Remaining != lim.Burst {
			t.Fatalf("Peek after Reset = %+v, %v; want %d left", d, err, lim.Burst)
		}
		got := drain(t, ls, "r")
		t.Logf("admitted %d after the reset; the other instances held %d", got, others)
		if got < lim.Burst || got > lim.Burst+int(others) {
			t.Fatalf("admitted %d after the reset, want %d to %d", got, lim.Burst, lim.Burst+int(others))
		}
	})
	t.Run("none after the lease TTL", func(t *testing.T) {
		ls := defaultInstances(t, srv, 3, lim)
		for _, l := range ls {
			warm(t, l, "r2")
		}
		if err := ls[2].Reset(ctx, "r2"); err != nil {
			t.Fatal(err)
		}
		// The janitor returns tokens older than the lease TTL: wait for
		// the counts, not for a time.
		deadline := time.Now().Add(30 * time.Second)
		for ls[0].Stats().TokensHeld+ls[1].Stats().TokensHeld > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("instances still hold %d and %d tokens 30 s after the reset",
					ls[0].Stats().TokensHeld, ls[1].Stats().TokensHeld)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := drain(t, ls, "r2"); got != lim.Burst {
			t.Fatalf("admitted %d once the old leases were returned, want exactly the burst %d", got, lim.Burst)
		}
	})
	t.Run("errors", func(t *testing.T) {
		l := defaultInstances(t, srv, 1, lim)[0]
		if err := l.Reset(ctx, ""); !errors.Is(err, ratelimit.ErrInvalidKey) {
			t.Fatalf("Reset of an empty key: %v, want ErrInvalidKey", err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Reset(ctx, "k"); !errors.Is(err, ratelimit.ErrClosed) {
			t.Fatalf("Reset after Close: %v, want ErrClosed", err)
		}
	})
}

// Interfaces the leasing limiter implements.
var (
	_ ratelimit.Settler   = (*lease.Limiter)(nil)
	_ ratelimit.Inspector = (*lease.Limiter)(nil)
)
