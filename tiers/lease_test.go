package tiers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// TestLeaseFactory plugs the leasing limiter into a tier, as the Factory
// documentation shows, next to a per-request limit: all-or-nothing holds,
// and a leasing limiter retired by a reload is closed.
func TestLeaseFactory(t *testing.T) {
	rdb, base := realServer(t)
	var mu sync.Mutex
	var leased []*closeRecorder
	direct := direct(rdb)
	factory := func(s tiers.Spec) (ratelimit.Limiter, error) {
		if !s.Limit.Lease {
			return direct(s)
		}
		l, err := lease.New(rdb, s.Limit.Budget, lease.WithKeyspace(s.Keyspace),
			lease.WithRefillTimeout(testTimeout))
		if err != nil {
			return nil, err
		}
		r := &closeRecorder{Limiter: l}
		mu.Lock()
		leased = append(leased, r)
		mu.Unlock()
		return r, nil
	}
	cfg := func(perMinute int) tiers.Config {
		return oneTier(
			tiers.Client("minute", ratelimit.PerMinute(perMinute)).WithLease(true),
			tiers.Client("short", ratelimit.PerHour(3)).WithAlgorithm(algorithms.GCRA),
		)
	}
	l := newLimiter(t, factory, cfg(100), tiers.WithKeyspace(base))
	ctx := context.Background()
	if allowed := limitertest.Admitted(t, "k", 6, l); allowed != 3 {
		t.Errorf("%d admitted, want 3 (the per-request limit)", allowed)
	}
	// The leased limit was refunded for the 3 denials: 3 spent locally.
	if err := l.Reload(cfg(200)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	old := leased[0]
	mu.Unlock()
	eventually(t, "retired leasing limiter closed", func() bool { return old.closed.Load() })
	if _, err := old.Allow(ctx, "k"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("retired leasing limiter after Close: %v, want ErrClosed", err)
	}
	// Closing returned its unspent lease: Redis holds 100 - 3 tokens,
	// plus what refilled meanwhile (100/min: well under 3 in a second).
	if got := tokens(t, rdb, base, "t", "minute", "k", 100); got < 97 || got > 100 {
		t.Errorf("token bucket holds %d after the lease was returned, want 97 to 100", got)
	}
	if _, err := l.Allow(ctx, "k"); err != nil {
		t.Errorf("check after reload: %v", err)
	}
}

// closeRecorder is a leasing limiter that records its Close.
type closeRecorder struct {
	*lease.Limiter
	closed atomic.Bool
}

func (c *closeRecorder) Close(ctx context.Context) error {
	err := c.Limiter.Close(ctx)
	c.closed.Store(true)
	return err
}
