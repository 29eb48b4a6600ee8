package tiers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// fake is an in-memory limiter without refill: each key may spend Burst
// tokens in all. It records how it is used.
type fake struct {
	spec tiers.Spec

	mu   sync.Mutex     // protects used
	used map[string]int // tokens spent per key

	calls      atomic.Int64
	closes     atomic.Int64
	afterClose atomic.Int64 // calls made after Close

	// When entered is set, AllowN sends on it and then waits for release
	// to be closed.
	entered chan struct{}
	release chan struct{}
	// err, when set, is returned by AllowN.
	err error
}

func (f *fake) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return f.AllowN(ctx, key, 1)
}

func (f *fake) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	f.calls.Add(1)
	if f.closes.Load() > 0 {
		f.afterClose.Add(1)
		return ratelimit.Decision{}, ratelimit.ErrClosed
	}
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	if f.err != nil {
		return ratelimit.Decision{}, f.err
	}
	lim := f.spec.Limit.Budget
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used == nil {
		f.used = make(map[string]int)
	}
	d := ratelimit.Decision{Limit: lim, ResetAfter: time.Second}
	if f.used[key]+n > lim.Burst {
		d.Remaining = lim.Burst - f.used[key]
		d.RetryAfter = lim.Interval() * time.Duration(n)
		return d, nil
	}
	f.used[key] += n
	d.Allowed = true
	d.Remaining = lim.Burst - f.used[key]
	return d, nil
}

func (f *fake) RefundN(ctx context.Context, key string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used[key] = max(f.used[key]-n, 0)
	return nil
}

func (f *fake) Close(ctx context.Context) error {
	if f.closes.Add(1) > 1 {
		return errors.New("fake: closed twice")
	}
	return nil
}

func (f *fake) spent(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used[key]
}

// fakes is a Factory of fakes that remembers what it made.
type fakes struct {
	mu   sync.Mutex
	made []*fake
	// setup, when set, adjusts each fake before it is returned.
	setup func(*fake)
	// err, when set, fails the factory for specs of this limit name.
	failName string
}

func (fs *fakes) factory(s tiers.Spec) (ratelimit.Limiter, error) {
	if s.Limit.Name == fs.failName {
		return nil, errors.New("fakes: refused")
	}
	f := &fake{spec: s}
	if fs.setup != nil {
		fs.setup(f)
	}
	fs.mu.Lock()
	fs.made = append(fs.made, f)
	fs.mu.Unlock()
	return f, nil
}

func (fs *fakes) all() []*fake {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*fake(nil), fs.made...)
}

// find returns the first fake made for limit name of tier (the tier's
// own, not an override's).
func (fs *fakes) find(tier, name string) *fake {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i := range fs.made {
		if f := fs.made[i]; f.spec.Tier == tier && f.spec.Limit.Name == name {
			return f
		}
	}
	return nil
}

// noRefund is a limiter that cannot refund.
type noRefund struct{ ratelimit.Limiter }

// newLimiter returns tiers.New(f, cfg, opts...), failing t if New fails,
// and closes the limiter when t ends.
// oneTier is a config of one tier, "t", the default, of limits.
func oneTier(limits ...tiers.Limit) tiers.Config {
	return tiers.Config{Tiers: []tiers.Tier{{Name: "t", Limits: limits}}, DefaultTier: "t"}
}

func newLimiter(t testing.TB, f tiers.Factory, cfg tiers.Config, opts ...tiers.Option) *tiers.Limiter {
	t.Helper()
	l, err := tiers.New(f, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}
