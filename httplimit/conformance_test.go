package httplimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dunglas/httpsfv"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// This file is the conformance test of the header fields against
// draft-ietf-httpapi-ratelimit-headers-10/-11: every field is parsed with
// a structured-field parser (RFC 9651), and the meaning of every
// parameter is checked on 200 and 429 responses, for every algorithm.

// policyItem is one parsed item of RateLimit-Policy.
type policyItem struct{ q, w int64 }

// limitItem is one parsed item of RateLimit.
type limitItem struct {
	r    int64
	t    int64 // -1: absent
	pk   []byte
	name string
}

// fields is a response's rate-limit fields, parsed and checked for syntax.
type fields struct {
	code     int
	policies map[string]policyItem
	limits   []limitItem
	retry    int64 // -1: absent
}

// parseFields parses rec's fields as the draft defines them, failing t on
// any syntax the draft does not allow.
func parseFields(t *testing.T, rec *httptest.ResponseRecorder) fields {
	t.Helper()
	f := fields{code: rec.Code, policies: map[string]policyItem{}, retry: -1}
	integer := func(field, name string, p *httpsfv.Params, required bool) int64 {
		v, ok := p.Get(name)
		if !ok {
			if required {
				t.Fatalf("%s: parameter %s missing", field, name)
			}
			return -1
		}
		n, ok := v.(int64)
		if !ok || n < 0 {
			t.Fatalf("%s: %s=%v is not a non-negative Integer", field, name, v)
		}
		return n
	}
	if vs := rec.Header().Values(httplimit.HeaderRateLimitPolicy); len(vs) > 0 {
		list, err := httpsfv.UnmarshalList(vs)
		if err != nil || len(list) == 0 {
			t.Fatalf("RateLimit-Policy %q: not a non-empty List: %v", vs, err)
		}
		for _, m := range list {
			it, ok := m.(httpsfv.Item)
			name, isString := it.Value.(string)
			if !ok || !isString {
				t.Fatalf("RateLimit-Policy %q: member %v is not an Item with a String", vs, m)
			}
			p := policyItem{q: integer("RateLimit-Policy", "q", it.Params, true), w: integer("RateLimit-Policy", "w", it.Params, false)}
			if p.w == 0 {
				t.Fatalf("RateLimit-Policy %q: w must be non-zero", vs)
			}
			if v, ok := it.Params.Get("pk"); ok {
				if _, ok := v.([]byte); !ok {
					t.Fatalf("RateLimit-Policy %q: pk is not a Byte Sequence", vs)
				}
			}
			f.policies[name] = p
		}
	}
	if vs := rec.Header().Values(httplimit.HeaderRateLimit); len(vs) > 0 {
		list, err := httpsfv.UnmarshalList(vs)
		if err != nil || len(list) == 0 {
			t.Fatalf("RateLimit %q: not a non-empty List: %v", vs, err)
		}
		for _, m := range list {
			it, ok := m.(httpsfv.Item)
			name, isString := it.Value.(string)
			if !ok || !isString {
				t.Fatalf("RateLimit %q: member %v is not an Item with a String", vs, m)
			}
			li := limitItem{name: name, r: integer("RateLimit", "r", it.Params, true), t: integer("RateLimit", "t", it.Params, false)}
			if v, ok := it.Params.Get("pk"); ok {
				if li.pk, ok = v.([]byte); !ok {
					t.Fatalf("RateLimit %q: pk is not a Byte Sequence", vs)
				}
			}
			if _, ok := f.policies[name]; !ok {
				t.Fatalf("RateLimit %q: item %q names no policy of RateLimit-Policy", vs, name)
			}
			f.limits = append(f.limits, li)
		}
	}
	if v := rec.Header().Get(httplimit.HeaderRetryAfter); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			t.Fatalf("Retry-After %q is not delay-seconds", v)
		}
		f.retry = n
	}
	// Retry-After SHOULD NOT reference a point earlier than t (section 6).
	for _, li := range f.limits {
		if f.retry >= 0 && li.t > f.retry {
			t.Fatalf("Retry-After %d is earlier than %q's t=%d", f.retry, li.name, li.t)
		}
	}
	switch rec.Code {
	case http.StatusTooManyRequests:
		if f.retry < 1 {
			t.Fatalf("429 without Retry-After")
		}
	case http.StatusOK:
		if f.retry >= 0 {
			t.Fatalf("200 with Retry-After")
		}
	}
	return f
}

// item returns the RateLimit item named name, failing t if there is none.
func (f fields) item(t *testing.T, name string) limitItem {
	t.Helper()
	for _, li := range f.limits {
		if li.name == name {
			return li
		}
	}
	t.Fatalf("%d response: no RateLimit item %q in %+v", f.code, name, f.limits)
	return limitItem{}
}

// conformanceCase is one limit run by one algorithm, with what its
// fields must say.
type conformanceCase struct {
	alg  algorithms.Algorithm
	lim  ratelimit.Limit
	q, w int64
	// t returns the t of the 200 that leaves remaining requests, e seconds
	// into the window (windows) or after the first request (buckets).
	t func(remaining int, e int64) int64
}

// cases are 10 a minute with bursts of 20, for every algorithm.
func cases() []conformanceCase {
	lim := ratelimit.PerMinute(10).WithBurst(20)
	const burst, period = 20, 60
	bucket := func(int, int64) int64 { return 6 } // the next token, every 6 s
	return []conformanceCase{
		{algorithms.TokenBucket, lim, burst, 2 * period, bucket},
		{algorithms.GCRA, lim, burst, 2 * period, bucket},
		// The end of the window.
		{algorithms.FixedWindow, lim, burst, period, func(_ int, e int64) int64 { return period - e }},
		// The previous window is empty: the end of the window, plus the
		// time the count (burst - remaining) takes to free one request.
		{algorithms.SlidingWindow, lim, burst, period, func(remaining int, e int64) int64 {
			count := int64(burst - remaining)
			return period - e + (period+count-1)/count
		}},
	}
}

// TestHeaderConformance checks, on miniredis with its clock under the
// test's control, for every algorithm and for both Limit and New:
//
//   - RateLimit-Policy: q and w are the algorithm's (q=burst over the
//     refill time for buckets, over the window for windows);
//   - RateLimit on each 200: r is the requests left, t the time until one
//     more is available, not until the limit is full;
//   - the 429: r=0, t the time until a request is admitted again;
//     Retry-After not earlier than t; a problem+json body when asked;
//   - t means what it says: one second before it, a request is still
//     refused; at it, admitted.
func TestHeaderConformance(t *testing.T) {
	for _, c := range cases() {
		for _, via := range []string{"Limit", "New"} {
			t.Run(c.alg.Name()+"/"+via, func(t *testing.T) {
				mr := miniredis.RunT(t)
				rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
				t.Cleanup(func() { rdb.Close() })
				// 10 s into a minute, so that a window's end is not a whole
				// window away.
				const e = 10
				t0 := time.Date(2026, 1, 1, 12, 0, e, 0, time.UTC)
				mr.SetTime(t0)
				h, name := conformanceHandler(t, rdb, c, via)
				get := func() fields {
					req := httptest.NewRequest("GET", "/", nil)
					req.RemoteAddr = "203.0.113.7:1"
					req.Header.Set("Accept", "application/problem+json")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					f := parseFields(t, rec)
					if p, ok := f.policies[name]; !ok || p.q != c.q || p.w != c.w {
						t.Fatalf("%d: RateLimit-Policy %v, want %q;q=%d;w=%d", rec.Code, f.policies, name, c.q, c.w)
					}
					if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Content-Type") != "application/problem+json" {
						t.Fatalf("429 as %s, want a problem", rec.Header().Get("Content-Type"))
					}
					return f
				}
				var lastT int64
				for i := range int(c.lim.Burst) {
					f := get()
					li := f.item(t, name)
					remaining := int(c.lim.Burst) - 1 - i
					if f.code != 200 || li.r != int64(remaining) {
						t.Fatalf("request %d: %d r=%d, want 200 r=%d", i, f.code, li.r, remaining)
					}
					if want := c.t(remaining, e); li.t != want {
						t.Fatalf("request %d (r=%d): t=%d, want %d", i, li.r, li.t, want)
					}
					lastT = li.t
				}
				f := get()
				li := f.item(t, name)
				if f.code != 429 || li.r != 0 || li.t != lastT || f.retry != li.t {
					t.Fatalf("over the burst: %d r=%d t=%d Retry-After %d; want 429 r=0 t=%d Retry-After %d", f.code, li.r, li.t, f.retry, lastT, lastT)
				}
				// t is the time until more quota: not a second earlier.
				mr.SetTime(t0.Add(time.Duration(li.t-1) * time.Second))
				if f := get(); f.code != 429 {
					t.Fatalf("%d s later (t=%d): %d, want still refused", li.t-1, li.t, f.code)
				}
				mr.SetTime(t0.Add(time.Duration(li.t) * time.Second))
				if f := get(); f.code != 200 {
					t.Fatalf("t=%d s later: %d, want admitted", li.t, f.code)
				}
			})
		}
	}
}

// conformanceHandler returns middleware for c, by Limit or by New (a tier
// "api" whose one limit is "minute"), and the name of its policy.
func conformanceHandler(t *testing.T, rdb redis.Scripter, c conformanceCase, via string) (http.Handler, string) {
	t.Helper()
	if via == "Limit" {
		return httplimit.Limit(newLimiter(t, rdb, c.lim, algorithms.WithAlgorithm(c.alg)))(hello), httplimit.DefaultPolicyName
	}
	l := limiterFrom(t, rdb, fmt.Sprintf(`
default_tier: api
tiers:
  api:
    limits:
      minute: {rate: %d, period: %v, burst: %d, algorithm: %s}
`, c.lim.Rate, c.lim.Period, c.lim.Burst, c.alg.Name()))
	return httplimit.New(l, httplimit.WithPartitionKey([]byte("secret")))(hello), "api.minute"
}

// TestHeaderConformanceSeveralLimits: a tier of two limits, refused by
// the second: RateLimit-Policy lists both, RateLimit only the refusing
// one, and Retry-After is not earlier than its t.
func TestHeaderConformanceSeveralLimits(t *testing.T) {
	rdb, mr := frozen(t)
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l := limiterFrom(t, rdb, `
default_tier: combo
tiers:
  combo:
    limits:
      minute: {rate: 20, period: 1m, algorithm: gcra}
      day: {rate: 5, period: 1d, algorithm: fixed_window}
`)
	h := httplimit.New(l)(hello)
	for i := range 6 {
		rec := do(h, request{remote: "203.0.113.7:1"})
		f := parseFields(t, rec)
		if len(f.policies) != 2 || f.policies["combo.minute"] != (policyItem{20, 60}) || f.policies["combo.day"] != (policyItem{5, 86400}) {
			t.Fatalf("request %d: RateLimit-Policy %v", i, f.policies)
		}
		if i < 5 {
			if f.code != 200 || len(f.limits) != 2 || f.item(t, "combo.minute").r != int64(19-i) || f.item(t, "combo.day").r != int64(4-i) {
				t.Fatalf("request %d: %d %+v", i, f.code, f.limits)
			}
			continue
		}
		day := f.item(t, "combo.day")
		if f.code != 429 || len(f.limits) != 1 || day.r != 0 || day.t != 12*3600 || f.retry != day.t {
			t.Fatalf("refused by the day limit: %d %+v Retry-After %d; want only combo.day r=0 t=43200", f.code, f.limits, f.retry)
		}
	}
}

// TestHeaderConformanceRealRedis runs each algorithm's fields on a real
// redis-server, whose clock the test does not control. Limits of a year
// keep the clock out of it: nothing refills and no window ends while the
// test runs (windows are aligned to the Unix epoch, one a year).
func TestHeaderConformanceRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	lim := ratelimit.Per(10, ratelimit.MaxPeriod).WithBurst(20)
	wantW := map[string]int64{ // q is the burst, 20
		algorithms.TokenBucket.Name():   2 * int64(ratelimit.MaxPeriod/time.Second),
		algorithms.GCRA.Name():          2 * int64(ratelimit.MaxPeriod/time.Second),
		algorithms.FixedWindow.Name():   int64(ratelimit.MaxPeriod / time.Second),
		algorithms.SlidingWindow.Name(): int64(ratelimit.MaxPeriod / time.Second),
	}
	for _, alg := range algorithms.All {
		t.Run(alg.Name(), func(t *testing.T) {
			rdb := srv.Client()
			t.Cleanup(func() { rdb.Close() })
			ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
			if err != nil {
				t.Fatal(err)
			}
			h := httplimit.Limit(newLimiter(t, rdb, lim, algorithms.WithAlgorithm(alg), algorithms.WithKeyspace(ks)))(hello)
			for i := range 21 {
				rec := do(h, request{remote: "203.0.113.7:1", header: http.Header{"Accept": {"application/json"}}})
				f := parseFields(t, rec)
				if p := f.policies["default"]; p.q != 20 || p.w != wantW[alg.Name()] {
					t.Fatalf("request %d: RateLimit-Policy %+v, want q=20 w=%d", i, p, wantW[alg.Name()])
				}
				li := f.item(t, "default")
				switch {
				case i < 20 && (f.code != 200 || li.r != int64(19-i) || li.t < 1):
					t.Fatalf("request %d: %d %+v, want 200 r=%d and a t", i, f.code, li, 19-i)
				case i == 20 && (f.code != 429 || li.r != 0 || li.t < 1 || f.retry < li.t ||
					rec.Header().Get("Content-Type") != "application/problem+json"):
					t.Fatalf("over the burst: %d %+v Retry-After %d %s", f.code, li, f.retry, rec.Header().Get("Content-Type"))
				}
			}
		})
	}
}
