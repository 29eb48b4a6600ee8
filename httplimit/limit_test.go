package httplimit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/reject"
)

// frozen returns a client of a fresh miniredis whose clock is stopped.
func frozen(t *testing.T) (*redis.Client, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb, mr
}

func newLimiter(t *testing.T, rdb redis.Scripter, lim ratelimit.Limit, opts ...algorithms.Option) *algorithms.Limiter {
	t.Helper()
	l, err := algorithms.NewLimiter(rdb, lim, append([]algorithms.Option{algorithms.WithTimeout(testTimeout)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLimit: one limit per client IP, with the same fields and refusals
// as plans.
func TestLimit(t *testing.T) {
	rdb, _ := frozen(t)
	h := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerMinute(2)))(hello)
	client := request{remote: "203.0.113.7:1234"}
	steps := []struct {
		code             int
		rateLimit, retry string
	}{
		{200, `"default";r=1;t=30`, ""},
		{200, `"default";r=0;t=30`, ""},
		{429, `"default";r=0;t=30`, "30"},
	}
	for i, s := range steps {
		rec := do(h, client)
		if rec.Code != s.code || rec.Header().Get("RateLimit") != s.rateLimit || rec.Header().Get("Retry-After") != s.retry {
			t.Errorf("step %d: %d RateLimit %q Retry-After %q; want %d %q %q", i,
				rec.Code, rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"), s.code, s.rateLimit, s.retry)
		}
		if got := rec.Header().Get("RateLimit-Policy"); got != `"default";q=2;w=60` {
			t.Errorf("step %d: RateLimit-Policy %q", i, got)
		}
	}
	if rec := do(h, request{remote: "203.0.113.8:1234"}); rec.Code != 200 {
		t.Errorf("another client: %d, want 200", rec.Code)
	}
	// An IPv6 client rotating within its /64 is one client.
	codes := ""
	for _, a := range []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1"} {
		codes += http.StatusText(do(h, request{remote: a}).Code) + ", "
	}
	if codes != "OK, OK, Too Many Requests, " {
		t.Errorf("IPv6 client rotating in its /64: %s", codes)
	}
}

// TestStackedMiddlewares: a per-IP limit around a per-API-key one, named
// apart with WithPolicyName. Each response describes both limits, the
// outer's items first, and a refusal by the inner one still shows the
// outer's; without names each would be "default", and without appending
// the inner's fields would replace the outer's.
func TestStackedMiddlewares(t *testing.T) {
	rdb, _ := frozen(t)
	ks := func(p string) algorithms.Option {
		k, err := ratelimit.NewKeyspace(p)
		if err != nil {
			t.Fatal(err)
		}
		return algorithms.WithKeyspace(k)
	}
	perKey := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerMinute(2), ks("key:")),
		httplimit.WithKey(httplimit.Header("X-API-Key")), httplimit.WithPolicyName("key"))(hello)
	h := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerMinute(5), ks("ip:")), httplimit.WithPolicyName("ip"))(perKey)
	client := request{remote: "203.0.113.7:1234", header: http.Header{"X-Api-Key": {"k1"}}}
	steps := []struct {
		code      int
		rateLimit string
	}{
		{200, `"ip";r=4;t=12, "key";r=1;t=30`},
		{200, `"ip";r=3;t=12, "key";r=0;t=30`},
		{429, `"ip";r=2;t=12, "key";r=0;t=30`},
	}
	for i, s := range steps {
		rec := do(h, client)
		if rec.Code != s.code || rec.Header().Get("RateLimit") != s.rateLimit {
			t.Errorf("step %d: %d RateLimit %q; want %d %q", i, rec.Code, rec.Header().Get("RateLimit"), s.code, s.rateLimit)
		}
		if got, want := rec.Header().Values("RateLimit-Policy"), `"ip";q=5;w=60, "key";q=2;w=60`; len(got) != 1 || got[0] != want {
			t.Errorf("step %d: RateLimit-Policy %q, want one line %q", i, got, want)
		}
	}
}

// TestLimitWithTiersLimiterIsNew: Limit of a tiers.Limiter enforces its
// plans, as New does.
func TestLimitWithTiersLimiterIsNew(t *testing.T) {
	l, _ := setup(t, false)
	h := httplimit.Limit(l, nil, httplimit.WithKey(httplimit.Header("X-API-Key")))(hello)
	rec := do(h, request{header: http.Header{"X-Api-Key": {"pro-key"}}})
	if got, want := rec.Header().Get("RateLimit"), `"pro.second";r=9;t=1, "pro.day";r=999;t=87`; rec.Code != 200 || got != want {
		t.Errorf("pro key: %d RateLimit %s, want 200 %s", rec.Code, got, want)
	}
}

// failing is a limiter whose every check fails with err.
type failing struct{ err error }

func (f failing) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return f.AllowN(ctx, key, 1)
}

func (f failing) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, f.err
}

// TestLimitFailures: only store failures follow the failure policy (open
// by default); FailLocal is treated as FailClosed; any other error refuses.
func TestLimitFailures(t *testing.T) {
	storeErr := &ratelimit.StoreError{Op: "gcra", Key: "k", Err: errors.New("connection refused")}
	tests := []struct {
		name   string
		err    error
		opts   []httplimit.Option
		code   int
		served bool
	}{
		{"store failure, default: fail open", storeErr, nil, 200, true},
		{"store failure, zero policy keeps the default", storeErr, []httplimit.Option{httplimit.WithFailurePolicy(0)}, 200, true},
		{"store failure, fail open", storeErr, []httplimit.Option{httplimit.WithFailurePolicy(ratelimit.FailOpen)}, 200, true},
		{"store failure, fail closed", storeErr, []httplimit.Option{httplimit.WithFailurePolicy(ratelimit.FailClosed)}, 503, false},
		{"store failure, fail local: closed", storeErr, []httplimit.Option{httplimit.WithFailurePolicy(ratelimit.FailLocal)}, 503, false},
		{"circuit open is a store failure", &ratelimit.StoreError{Op: "gcra", Err: ratelimit.ErrCircuitOpen}, []httplimit.Option{httplimit.WithFailurePolicy(ratelimit.FailClosed)}, 503, false},
		{"closed limiter", ratelimit.ErrClosed, nil, 503, false},
		{"any other error", errors.New("boom"), nil, 403, false},
		{"invalid n", ratelimit.ErrInvalidN, nil, 403, false},
	}
	for _, tt := range tests {
		var served atomic.Int64
		var logs bytes.Buffer
		opts := append([]httplimit.Option{httplimit.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}, tt.opts...)
		h := httplimit.Limit(failing{tt.err}, opts...)(counting(&served))
		rec := do(h, request{remote: "203.0.113.7:1"})
		if rec.Code != tt.code || (served.Load() == 1) != tt.served {
			t.Errorf("%s: %d, served %v; want %d, served %v", tt.name, rec.Code, served.Load() == 1, tt.code, tt.served)
		}
		if rec.Header().Get("RateLimit") != "" {
			t.Errorf("%s: a failed check carries RateLimit %q", tt.name, rec.Header().Get("RateLimit"))
		}
		if logs.Len() == 0 {
			t.Errorf("%s: nothing logged", tt.name)
		}
	}
}

// TestOptionZeroValues: the zero value of every option keeps its default,
// and nil options are skipped.
func TestOptionZeroValues(t *testing.T) {
	rdb, _ := frozen(t)
	lim := newLimiter(t, rdb, ratelimit.PerMinute(1))
	h := httplimit.Limit(lim, nil, httplimit.WithKey(nil), httplimit.WithStrategy(nil), httplimit.WithLogger(nil),
		httplimit.WithFailurePolicy(0))(hello)
	client := request{remote: "203.0.113.7:1"}
	if rec := do(h, client); rec.Code != 200 || rec.Header().Get("RateLimit") == "" {
		t.Errorf("first request: %d %v", rec.Code, rec.Header())
	}
	if rec := do(h, client); rec.Code != 429 { // default strategy: reject
		t.Errorf("second request: %d, want 429", rec.Code)
	}
	if rec := do(h, request{remote: "203.0.113.8:1", header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}}); rec.Code != 200 {
		t.Errorf("default key (peer address, XFF ignored): %d, want 200", rec.Code)
	}
	l, _ := setup(t, false)
	if rec := do(httplimit.New(l, nil, httplimit.WithTier(nil))(hello), client); rec.Code != 200 {
		t.Errorf("New with nil options: %d, want 200", rec.Code)
	}
}

// TestWithoutHeaders: no RateLimit fields, but Retry-After on a refusal.
func TestWithoutHeaders(t *testing.T) {
	rdb, _ := frozen(t)
	h := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerMinute(1)), httplimit.WithoutHeaders())(hello)
	client := request{remote: "203.0.113.7:1"}
	for i, want := range []int{200, 429} {
		rec := do(h, client)
		if rec.Code != want || rec.Header().Get("RateLimit") != "" || rec.Header().Get("RateLimit-Policy") != "" {
			t.Errorf("request %d: %d %v", i, rec.Code, rec.Header())
		}
		if want == 429 && rec.Header().Get("Retry-After") != "60" {
			t.Errorf("refusal: Retry-After %q, want 60", rec.Header().Get("Retry-After"))
		}
	}
}

// notRefunder hides a limiter's RefundN.
type notRefunder struct{ ratelimit.Limiter }

// TestStrategySeesRefunderOnlyIfTheLimiterIsOne: a strategy that gives
// tokens back (Wait) can only do so when the limiter can.
func TestStrategySeesRefunderOnlyIfTheLimiterIsOne(t *testing.T) {
	rdb, _ := frozen(t)
	lim := newLimiter(t, rdb, ratelimit.PerMinute(1))
	for _, tt := range []struct {
		name string
		l    ratelimit.Limiter
		want bool
	}{{"refunder", lim, true}, {"not a refunder", notRefunder{lim}, false}} {
		var got atomic.Bool
		s := reject.Custom(func(ctx context.Context, r reject.Request) (ratelimit.Decision, error) {
			_, ok := r.Limiter.(ratelimit.Refunder)
			got.Store(ok)
			return r.Decision, &ratelimit.ExceededError{Key: r.Key, Decision: r.Decision}
		})
		h := httplimit.Limit(tt.l, httplimit.WithStrategy(s))(hello)
		remote := request{remote: "198.51.100." + map[bool]string{true: "1", false: "2"}[tt.want] + ":1"}
		do(h, remote)
		if rec := do(h, remote); rec.Code != 429 || got.Load() != tt.want {
			t.Errorf("%s: %d, strategy saw a Refunder: %v; want 429, %v", tt.name, rec.Code, got.Load(), tt.want)
		}
	}
}

// TestLimitWaitStrategy: the Wait strategy works with Limit, on a live
// clock: 2/s refills a token every 500 ms.
func TestLimitWaitStrategy(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	h := httplimit.Limit(newLimiter(t, rdb, ratelimit.PerSecond(2)), httplimit.WithStrategy(reject.Wait(reject.WithMaxWait(5*time.Second))))(hello)
	for i := range 3 {
		if rec := do(h, request{remote: "203.0.113.7:1"}); rec.Code != 200 {
			t.Errorf("request %d under Wait: %d, want 200 after waiting", i, rec.Code)
		}
	}
}

func TestNilLimiterPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Limit": func() { httplimit.Limit(nil) },
		"New":   func() { httplimit.New(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(nil) did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestEndedRequestNotServed: a request whose context has ended (the client
// hung up, or a deadline set in front of the middleware passed) before or
// during its check is answered 503 with Retry-After, never served and
// never an empty 200 OK, which writing nothing would send; one that ended
// before the check spends no token.
func TestEndedRequestNotServed(t *testing.T) {
	rdb, _ := frozen(t)
	lim := newLimiter(t, rdb, ratelimit.PerMinute(2))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	held, hang := context.WithCancel(context.Background()) // the client hangs up while the strategy holds it
	defer hang()
	for _, tt := range []struct {
		name     string
		ctx      func() context.Context
		strategy reject.Strategy
		remote   string
	}{
		{"cancelled before the check", func() context.Context { return cancelled }, nil, "203.0.113.1:1"},
		{"deadline passed before the check", func() context.Context { return expired }, nil, "203.0.113.2:1"},
		{"cancelled while the strategy holds it", func() context.Context { return held }, reject.Custom(func(ctx context.Context, r reject.Request) (ratelimit.Decision, error) {
			hang()
			<-ctx.Done()
			return r.Decision, ctx.Err()
		}), "203.0.113.3:1"},
	} {
		var served atomic.Int64
		h := httplimit.Limit(lim, httplimit.WithStrategy(tt.strategy))(counting(&served))
		if tt.strategy != nil { // spend the budget, so that the strategy is asked
			do(h, request{remote: tt.remote})
			do(h, request{remote: tt.remote})
			served.Store(0)
		}
		req := httptest.NewRequest("GET", "/", nil).WithContext(tt.ctx())
		req.RemoteAddr = tt.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || served.Load() != 0 {
			t.Errorf("%s: %d Retry-After %q, served %d; want 503, 1, not served", tt.name,
				rec.Code, rec.Header().Get("Retry-After"), served.Load())
		}
		if tt.strategy == nil {
			if got := do(h, request{remote: tt.remote}).Header().Get("RateLimit"); got != `"default";r=1;t=30` {
				t.Errorf("%s: the next request sees RateLimit %s, want r=1 (the ended one spent nothing)", tt.name, got)
			}
		}
	}
}
