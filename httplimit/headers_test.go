package httplimit

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func TestQuota(t *testing.T) {
	tests := []struct {
		lim  ratelimit.Limit
		q, w int64
	}{
		{ratelimit.PerSecond(5).WithBurst(10), 5, 1},
		{ratelimit.Per(1000, 24*time.Hour), 1000, 86400},
		{ratelimit.Per(10, 100*time.Millisecond), 100, 1},
		{ratelimit.Per(3, 1500*time.Millisecond), 4, 2},
		{ratelimit.Per(1, time.Hour+time.Millisecond), 1, 3601},
	}
	for _, tt := range tests {
		if q, w := quota(tt.lim); q != tt.q || w != tt.w {
			t.Errorf("quota(%v) = q=%d w=%d, want q=%d w=%d", tt.lim, q, w, tt.q, tt.w)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	sec := ratelimit.PerSecond(5).WithBurst(10)
	day := ratelimit.Per(1000, 24*time.Hour)
	tests := []struct {
		name          string
		res           tiers.Result
		policy, state string
	}{
		{"one limit: named after the tier",
			tiers.Result{Tier: "free", Limits: []tiers.LimitResult{
				{Name: "second", Limit: ratelimit.PerSecond(5), Checked: true, Decision: ratelimit.Decision{Remaining: 0, ResetAfter: 2100 * time.Millisecond}},
			}},
			`"free";q=5;w=1`, `"free";r=0;t=3`},
		{"several limits: tier.limit; unchecked ones only in the policy",
			tiers.Result{Tier: "free", Limits: []tiers.LimitResult{
				{Name: "second", Limit: sec, Checked: true, Decision: ratelimit.Decision{Remaining: 0, ResetAfter: 2 * time.Second}},
				{Name: "day", Limit: day},
			}},
			`"free.second";q=5;w=1, "free.day";q=1000;w=86400`, `"free.second";r=0;t=2`},
		{"all checked",
			tiers.Result{Tier: "pro", Limits: []tiers.LimitResult{
				{Name: "second", Limit: sec, Checked: true, Decision: ratelimit.Decision{Remaining: 9, ResetAfter: 200 * time.Millisecond}},
				{Name: "day", Limit: day, Checked: true, Decision: ratelimit.Decision{Remaining: 999, ResetAfter: 86400 * time.Millisecond}},
			}},
			`"pro.second";q=5;w=1, "pro.day";q=1000;w=86400`, `"pro.second";r=9;t=1, "pro.day";r=999;t=87`},
	}
	for _, tt := range tests {
		h := http.Header{}
		setRateLimitHeaders(h, tt.res)
		if got := h.Get("RateLimit-Policy"); got != tt.policy {
			t.Errorf("%s: RateLimit-Policy = %s, want %s", tt.name, got, tt.policy)
		}
		if got := h.Get("RateLimit"); got != tt.state {
			t.Errorf("%s: RateLimit = %s, want %s", tt.name, got, tt.state)
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
