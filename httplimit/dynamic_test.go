package httplimit_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
)

// TestLimitDynamic: a ratelimit.Dynamic behind Limit applies each
// tenant's plan, described by its limiter's algorithm, a plan change once
// invalidated, and settles costs; a
// tenant whose plan cannot be had is refused with 403, unless the cause
// is a store failure, which follows the failure policy.
func TestLimitDynamic(t *testing.T) {
	rdb, _ := frozen(t)
	var mu sync.Mutex
	plans := map[string]ratelimit.Limit{"acme": ratelimit.PerMinute(2), "half": ratelimit.PerMinute(10).WithBurst(5)}
	storeDown := &ratelimit.StoreError{Op: "plans", Key: "down", Err: errors.New("connection refused")}
	limitOf := func(_ context.Context, key string) (ratelimit.Limit, error) {
		mu.Lock()
		defer mu.Unlock()
		if key == "down" {
			return ratelimit.Limit{}, storeDown
		}
		lim, ok := plans[key]
		if !ok {
			return ratelimit.Limit{}, errors.New("no such tenant")
		}
		return lim, nil
	}
	d := ratelimit.NewDynamic(limitOf, func(lim ratelimit.Limit) (*algorithms.Limiter, error) {
		return algorithms.NewLimiter(rdb, lim, algorithms.WithAlgorithm(algorithms.FixedWindow), algorithms.WithTimeout(testTimeout))
	})
	var accepted atomic.Int64
	key := httplimit.WithKey(httplimit.Header("X-Tenant"))
	h := httplimit.Limit(d, key, httplimit.WithCost(estimate))(reporting(&accepted))
	closed := httplimit.Limit(d, key, httplimit.WithFailurePolicy(ratelimit.FailClosed))(hello)
	tenant := func(name string, estimate, actual int) request {
		r := costly("", estimate, actual)
		r.header.Set("X-Tenant", name)
		return r
	}
	steps := []struct {
		h      http.Handler
		req    request
		before func()
		code   int
		policy string
	}{
		{h, tenant("acme", 1, -1), nil, 200, `"default";q=2;w=60`},
		{h, tenant("acme", 1, -1), nil, 200, `"default";q=2;w=60`},
		{h, tenant("acme", 1, -1), nil, 429, `"default";q=2;w=60`},
		{h, tenant("acme", 1, -1), func() {
			mu.Lock()
			plans["acme"] = ratelimit.PerMinute(5)
			mu.Unlock()
			d.Invalidate("acme")
		}, 200, `"default";q=5;w=60`}, // 2 of 5 spent before: 3 left, then 2
		{h, tenant("acme", 2, 1), nil, 200, `"default";q=5;w=60`}, // settled at 1: 1 left
		{h, tenant("acme", 1, -1), nil, 200, `"default";q=5;w=60`},
		{h, tenant("acme", 1, -1), nil, 429, `"default";q=5;w=60`},
		// Described as the fixed window it is: w is the window, not
		// the 30 s a bucket of 5 at 10 a minute refills in.
		{h, tenant("half", 1, -1), nil, 200, `"default";q=5;w=60`},
		{h, tenant("nobody", 1, -1), nil, 403, ""},
		{h, tenant("down", 1, -1), nil, 200, ""}, // fail open, served unlimited
		{closed, tenant("down", 1, -1), nil, 503, ""},
		{closed, tenant("nobody", 1, -1), nil, 403, ""},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		rec := do(s.h, s.req)
		if rec.Code != s.code || rec.Header().Get("RateLimit-Policy") != s.policy {
			t.Errorf("step %d: %d RateLimit-Policy %q, want %d %q", i, rec.Code, rec.Header().Get("RateLimit-Policy"), s.code, s.policy)
		}
	}
	if accepted.Load() != 1 {
		t.Errorf("%d costs reported, want 1", accepted.Load())
	}
}
