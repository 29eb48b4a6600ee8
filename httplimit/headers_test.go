package httplimit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// TestQuota: q and w per algorithm. A window admits Burst per Period; a
// bucket admits Burst at once and takes Burst × Period / Rate to refill
// them. A w that is not whole seconds is rounded up, q scaled to match.
func TestQuota(t *testing.T) {
	bucket := []algorithms.Algorithm{nil, algorithms.TokenBucket, algorithms.GCRA}
	window := []algorithms.Algorithm{algorithms.FixedWindow, algorithms.SlidingWindow}
	tests := []struct {
		lim  ratelimit.Limit
		algs []algorithms.Algorithm
		q, w int64
	}{
		{ratelimit.PerSecond(5).WithBurst(10), bucket, 10, 2},
		{ratelimit.PerSecond(5).WithBurst(10), window, 10, 1},
		{ratelimit.PerMinute(10).WithBurst(20), bucket, 20, 120},
		{ratelimit.PerMinute(10).WithBurst(20), window, 20, 60},
		{ratelimit.PerMinute(2), bucket, 2, 60},
		{ratelimit.Per(1000, 24*time.Hour), bucket, 1000, 86400},
		{ratelimit.Per(1000, 24*time.Hour), window, 1000, 86400},
		{ratelimit.Per(1000, 24*time.Hour).WithBurst(10), bucket, 10, 864},
		{ratelimit.Per(10, 100*time.Millisecond), bucket, 100, 1},
		{ratelimit.Per(10, 100*time.Millisecond), window, 100, 1},
		{ratelimit.Per(3, 1500*time.Millisecond), bucket, 4, 2},
		{ratelimit.Per(3, 1500*time.Millisecond), window, 4, 2},
		{ratelimit.Per(1, time.Hour+time.Millisecond), bucket, 1, 3601},
		{ratelimit.PerSecond(3), bucket, 3, 1},
		{ratelimit.PerSecond(7).WithBurst(1), bucket, 7, 1}, // refills in 1/7 s: 7 a second
		// Saturating: a year a token and a burst of 2^40.
		{ratelimit.Per(1, ratelimit.MaxPeriod).WithBurst(ratelimit.MaxRate), bucket, ratelimit.MaxRate, maxSFInteger},
		{ratelimit.Per(ratelimit.MaxRate, ratelimit.MinPeriod), bucket, maxSFInteger, 1},
	}
	for _, tt := range tests {
		for _, alg := range tt.algs {
			if q, w := quota(tt.lim, alg); q != tt.q || w != tt.w {
				t.Errorf("quota(%v, %v) = q=%d w=%d, want q=%d w=%d", tt.lim, alg, q, w, tt.q, tt.w)
			}
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	sec := ratelimit.PerSecond(5).WithBurst(10)
	day := ratelimit.Per(1000, 24*time.Hour)
	tests := []struct {
		name          string
		res           tiers.Result
		refused       bool
		policy, state string
		maxT          int64
	}{
		{"one limit: named tier.limit",
			tiers.Result{Tier: "free", Limits: []tiers.LimitResult{
				{Name: "second", Limit: ratelimit.PerSecond(5), Checked: true, Decision: ratelimit.Decision{Allowed: true, Remaining: 0, ResetAfter: 1 * time.Second}},
			}}, false,
			`"free.second";q=5;w=1`, `"free.second";r=0;t=1`, 1},
		{"several limits; unchecked ones only in the policy",
			tiers.Result{Tier: "free", Limits: []tiers.LimitResult{
				{Name: "second", Limit: sec, Checked: true, Decision: ratelimit.Decision{Remaining: 0, RetryAfter: 150 * time.Millisecond, ResetAfter: 2 * time.Second}},
				{Name: "day", Limit: day, Algorithm: algorithms.FixedWindow},
			}}, true,
			`"free.second";q=10;w=2, "free.day";q=1000;w=86400`, `"free.second";r=0;t=1`, 1},
		{"all checked: t is the time until the next token, or the window's end",
			tiers.Result{Tier: "pro", Limits: []tiers.LimitResult{
				{Name: "second", Limit: sec, Checked: true, Decision: ratelimit.Decision{Allowed: true, Remaining: 7, ResetAfter: 500 * time.Millisecond}},
				{Name: "day", Limit: day, Algorithm: algorithms.FixedWindow, Checked: true, Decision: ratelimit.Decision{Allowed: true, Remaining: 999, ResetAfter: 5 * time.Hour}},
			}}, false,
			`"pro.second";q=10;w=2, "pro.day";q=1000;w=86400`, `"pro.second";r=7;t=1, "pro.day";r=999;t=18000`, 18000},
		{"refused by a later limit: only the denying one in RateLimit",
			tiers.Result{Tier: "pro", Limits: []tiers.LimitResult{
				{Name: "day", Limit: day, Checked: true, Refunded: true, Decision: ratelimit.Decision{Allowed: true, Remaining: 500, ResetAfter: 500 * 86400 * time.Millisecond}},
				{Name: "second", Limit: sec, Checked: true, Decision: ratelimit.Decision{Remaining: 0, RetryAfter: 1500 * time.Millisecond, ResetAfter: 2 * time.Second}},
			}}, true,
			`"pro.day";q=1000;w=86400, "pro.second";q=10;w=2`, `"pro.second";r=0;t=2`, 2},
		{"a full limit has no t",
			tiers.Result{Tier: "t", Limits: []tiers.LimitResult{
				{Name: "l", Limit: sec, Checked: true, Decision: ratelimit.Decision{Allowed: true, Remaining: 10}},
			}}, false,
			`"t.l";q=10;w=2`, `"t.l";r=10`, 0},
		{"a fallback decision is not shown",
			tiers.Result{Tier: "t", Limits: []tiers.LimitResult{
				{Name: "l", Limit: sec, Checked: true, Decision: ratelimit.Decision{Allowed: true, Source: ratelimit.SourceFallback}},
			}}, false,
			`"t.l";q=10;w=2`, ``, 0},
		{"saturated durations stay non-negative",
			tiers.Result{Tier: "free", Limits: []tiers.LimitResult{
				{Name: "lifetime", Limit: ratelimit.Per(1, 366*24*time.Hour).WithBurst(99), Checked: true,
					Decision: ratelimit.Decision{Allowed: true, Remaining: 1, ResetAfter: math.MaxInt64}},
			}}, false,
			`"free.lifetime";q=99;w=3130617600`, `"free.lifetime";r=1;t=31622400`, 31622400},
	}
	for _, tt := range tests {
		h := http.Header{}
		maxT := setRateLimitHeaders(h, policiesOf(tt.res, "k", ""), tt.refused, nil)
		if got := h.Get("RateLimit-Policy"); got != tt.policy {
			t.Errorf("%s: RateLimit-Policy = %s, want %s", tt.name, got, tt.policy)
		}
		if got := h.Get("RateLimit"); got != tt.state {
			t.Errorf("%s: RateLimit = %s, want %s", tt.name, got, tt.state)
		}
		if maxT != tt.maxT {
			t.Errorf("%s: largest t %d, want %d", tt.name, maxT, tt.maxT)
		}
	}
}

// model is one algorithm's reference model with its state.
type model struct {
	alg    algorithms.Algorithm
	decide func(nowUS int64, n int, keep bool) ratelimit.Decision // keep: update the state
	// exact reports whether untilMore must be exact now (not just an
	// upper bound).
	exact func() bool
}

func newModel(alg algorithms.Algorithm, lim ratelimit.Limit) *model {
	m := &model{alg: alg, exact: func() bool { return true }}
	switch alg {
	case algorithms.TokenBucket:
		m.decide = decider(algorithms.TokenBucketModel{Limit: lim}.Decide, nil)
	case algorithms.GCRA:
		m.decide = decider(algorithms.GCRAModel{Limit: lim}.Decide, nil)
	case algorithms.FixedWindow:
		m.decide = decider(algorithms.FixedWindowModel{Limit: lim}.Decide, nil)
	case algorithms.SlidingWindow:
		var s algorithms.SlidingWindowState
		var now0 int64
		m.decide = decider(algorithms.SlidingWindowModel{Limit: lim}.Decide, func(next algorithms.SlidingWindowState, now int64) {
			s, now0 = next, now
		})
		// Exact when the previous window counted nothing.
		m.exact = func() bool { return s.Prev == 0 && s.Window == now0/lim.Period.Microseconds() }
	}
	return m
}

// decider returns a model's decide function over a state of its own,
// starting from the zero state (a missing key); kept, if not nil, sees
// every state it keeps.
func decider[S any](decide func(S, int64, int) (S, ratelimit.Decision), kept func(S, int64)) func(int64, int, bool) ratelimit.Decision {
	var s S
	return func(now int64, n int, keep bool) ratelimit.Decision {
		next, d := decide(s, now, n)
		if keep {
			s = next
			if kept != nil {
				kept(next, now)
			}
		}
		return d
	}
}

// TestUntilMoreIsWhenQuotaReturns checks the meaning of t against each
// algorithm's reference model, over random request sequences: at now + t
// the limit has more quota than the decision left (a request for
// Remaining + 1 tokens is admitted), and for every algorithm but the
// sliding window (and for it when the previous window was empty) not
// before: t is the time until additional quota, not until the limit is
// full.
func TestUntilMoreIsWhenQuotaReturns(t *testing.T) {
	limits := []ratelimit.Limit{
		ratelimit.PerMinute(2),
		ratelimit.PerSecond(5).WithBurst(10),
		ratelimit.PerMinute(10).WithBurst(20),
		ratelimit.Per(3, 1500*time.Millisecond),
		ratelimit.Per(7, time.Hour).WithBurst(3),
		ratelimit.Per(1000, 24*time.Hour),
	}
	for _, alg := range algorithms.All {
		for _, lim := range limits {
			t.Run(fmt.Sprintf("%s/%v", alg.Name(), lim), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, uint64(lim.Rate)))
				m := newModel(alg, lim)
				now := int64(1_767_225_600_000_000) // 2026-01-01, µs
				checked := 0
				for step := range 400 {
					now += rng.Int64N(2 * lim.Interval().Microseconds())
					d := m.decide(now, 1, true)
					p := policy{limit: lim, alg: alg, checked: true, d: d}
					wait, ok := untilMore(p)
					if !ok {
						if d.Remaining < lim.Burst {
							t.Fatalf("step %d: %+v: no t although quota is missing", step, d)
						}
						continue
					}
					need := d.Remaining + 1
					if !d.Allowed {
						need = 1 // a denial's t is its RetryAfter, for the same request
					}
					// 1µs of slack: the token bucket keeps float tokens.
					at := now + (wait + time.Microsecond - 1).Microseconds() + 1
					if got := m.decide(at, need, false); !got.Allowed {
						t.Fatalf("step %d: %+v: t=%v, but %d tokens are still denied then (%+v)", step, d, wait, need, got)
					}
					if d.Allowed && m.exact() && wait > 3*time.Microsecond {
						if got := m.decide(now+wait.Microseconds()-3, need, false); got.Allowed {
							t.Fatalf("step %d: %+v: t=%v, but %d tokens are admitted already 3µs before", step, d, wait, need)
						}
						checked++
					}
				}
				if checked == 0 {
					t.Errorf("no step checked that t is exact")
				}
			})
		}
	}
}

func TestCeilSecondsSaturates(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 1},
		{time.Second, 1},
		{time.Second + 1, 2},
		{math.MaxInt64, 9223372037},
		{math.MaxInt64 - time.Second + 2, 9223372036},
	}
	for _, tt := range tests {
		if got := ceilSeconds(tt.d); got != tt.want {
			t.Errorf("ceilSeconds(%d) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

// TestPoliciesOfPrefix: WithPolicyName's prefix goes before a plan's
// "<tier>.<limit>" names, and no prefix leaves them as they are.
func TestPoliciesOfPrefix(t *testing.T) {
	res := tiers.Result{Tier: "free", Limits: []tiers.LimitResult{{Name: "second", Limit: ratelimit.PerSecond(5)}}}
	if ps := policiesOf(res, "k", "api"); len(ps) != 1 || ps[0].name != "api.free.second" {
		t.Errorf("with prefix api: %+v, want one policy named api.free.second", ps)
	}
	if ps := policiesOf(res, "k", ""); len(ps) != 1 || ps[0].name != "free.second" {
		t.Errorf("without a prefix: %+v, want one policy named free.second", ps)
	}
}
