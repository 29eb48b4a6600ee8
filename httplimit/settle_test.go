package httplimit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// estimate is a WithCost function that reads the estimate from the
// X-Estimate header (1 without it).
func estimate(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get("X-Estimate"))
	if err != nil {
		return 1
	}
	return n
}

// reporting is a handler that reports the cost in the request's X-Actual
// header, if any, with SetCost, and counts the reports SetCost accepted.
func reporting(accepted *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.Header.Get("X-Actual"); s != "" {
			n, _ := strconv.Atoi(s)
			if httplimit.SetCost(r.Context(), n) {
				accepted.Add(1)
			}
		}
		w.Write([]byte("done"))
	})
}

func costly(remote string, estimate, actual int) request {
	h := http.Header{"X-Estimate": {strconv.Itoa(estimate)}}
	if actual >= 0 {
		h.Set("X-Actual", strconv.Itoa(actual))
	}
	return request{remote: remote, header: h}
}

// settleCases are clients of a limit of 20 that nothing refills while the
// test runs, each sending requests of one estimate and actual cost, every
// request to the next instance in turn, until one is refused.
var settleCases = []struct {
	name             string
	estimate, actual int // actual -1: the handler reports no cost
	admitted         int
	spent            int // what the admitted requests cost in all
}{
	// 20 → 13 → 6 → −1 (debt): the fourth request is refused.
	{"under-estimate charges debt", 1, 7, 3, 21},
	// Each request reserves 10 and gets 8 back: 20 → 18 → … → 8.
	{"over-estimate refunds", 10, 2, 6, 12},
	// Nothing reported: the estimate is the cost.
	{"no report keeps the estimate", 10, -1, 2, 20},
	{"exact estimate", 4, 4, 5, 20},
}

// TestSettleRealRedis: instances sharing one real redis-server settle
// each request's reported cost, through Limit (every algorithm) and New
// (a client limit and a shared one), so that a client that
// under-estimates is refused sooner and one that over-estimates is
// admitted more often, by exactly the costs reported.
func TestSettleRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	const instances = 3
	lim := ratelimit.Per(20, ratelimit.MaxPeriod)
	run := func(t *testing.T, hs []http.Handler) {
		for ci, c := range settleCases {
			remote := fmt.Sprintf("203.0.113.%d:1", ci+1)
			admitted := 0
			for i := range 20 {
				rec := do(hs[i%len(hs)], costly(remote, c.estimate, c.actual))
				if rec.Code != 200 {
					if rec.Code != 429 {
						t.Fatalf("%s: request %d: %d %s", c.name, i, rec.Code, rec.Body)
					}
					break
				}
				admitted++
			}
			if admitted != c.admitted {
				t.Errorf("%s: %d admitted, want %d", c.name, admitted, c.admitted)
			}
		}
	}
	t.Run("Limit", func(t *testing.T) {
		for _, alg := range algorithms.All {
			t.Run(alg.Name(), func(t *testing.T) {
				ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
				if err != nil {
					t.Fatal(err)
				}
				var hs []http.Handler
				var accepted atomic.Int64
				for range instances {
					rdb := srv.Client()
					t.Cleanup(func() { rdb.Close() })
					l := newLimiter(t, rdb, lim, algorithms.WithAlgorithm(alg), algorithms.WithKeyspace(ks))
					hs = append(hs, httplimit.Limit(l, httplimit.WithCost(estimate))(reporting(&accepted)))
				}
				run(t, hs)
				if want := int64(3 + 6 + 5); accepted.Load() != want { // every report of an admitted request
					t.Errorf("SetCost accepted %d costs, want %d", accepted.Load(), want)
				}
			})
		}
	})
	t.Run("New", func(t *testing.T) {
		ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg := tiers.Config{DefaultTier: "free", Tiers: []tiers.Tier{{Name: "free", Limits: []tiers.Limit{
			tiers.Client("quota", lim),
			tiers.Shared("all", ratelimit.Per(1000, ratelimit.MaxPeriod)),
		}}}}
		var hs []http.Handler
		var ls []*tiers.Limiter
		var accepted atomic.Int64
		for range instances {
			rdb := srv.Client()
			t.Cleanup(func() { rdb.Close() })
			l, err := tiers.New(tiers.Direct(rdb, algorithms.WithTimeout(testTimeout)), cfg, tiers.WithKeyspace(ks))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close(context.Background()) })
			ls = append(ls, l)
			hs = append(hs, httplimit.New(l, httplimit.WithCost(estimate))(reporting(&accepted)))
		}
		run(t, hs)
		if want := int64(3 + 6 + 5); accepted.Load() != want {
			t.Errorf("SetCost accepted %d costs, want %d", accepted.Load(), want)
		}
		// The tier's shared budget was charged the actual costs too.
		spent := 0
		for _, c := range settleCases {
			spent += c.spent
		}
		res, err := ls[0].Inspect(t.Context(), "203.0.113.99", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Limits[1].Decision.Remaining; got != 1000-spent {
			t.Errorf("shared budget: %d left, want %d", got, 1000-spent)
		}
	})
}

// TestSettleAfterClientGone: the settle runs even when the client hung
// up while the handler ran, on a context that is not cancelled.
func TestSettleAfterClientGone(t *testing.T) {
	rdb, _ := frozen(t)
	l := newLimiter(t, rdb, ratelimit.PerMinute(10))
	ctx, cancel := context.WithCancel(context.Background())
	h := httplimit.Limit(l, httplimit.WithCost(estimate))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
		httplimit.SetCost(r.Context(), 8)
	}))
	req := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	req.RemoteAddr = "203.0.113.7:1"
	h.ServeHTTP(httptest.NewRecorder(), req)
	if d, err := l.Peek(context.Background(), "203.0.113.7"); err != nil || d.Remaining != 2 {
		t.Errorf("after a cost of 8 from a client gone: %d left (%v), want 2", d.Remaining, err)
	}
}

// TestSettlePanic: a handler that panics after reporting its cost has it
// settled; one that reported none keeps its estimate spent. The panic
// goes on to the server.
func TestSettlePanic(t *testing.T) {
	rdb, _ := frozen(t)
	l := newLimiter(t, rdb, ratelimit.PerMinute(10))
	h := httplimit.Limit(l, httplimit.WithCost(estimate))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := r.Header.Get("X-Actual"); s != "" {
			n, _ := strconv.Atoi(s)
			httplimit.SetCost(r.Context(), n)
		}
		panic(http.ErrAbortHandler)
	}))
	steps := []struct {
		remote           string
		estimate, actual int
		left             int
	}{
		{"203.0.113.7:1", 5, 1, 9},
		{"203.0.113.8:1", 5, -1, 5},
	}
	for _, s := range steps {
		func() {
			defer func() {
				if p := recover(); p != http.ErrAbortHandler {
					t.Errorf("%s: recovered %v, want the handler's panic", s.remote, p)
				}
			}()
			do(h, costly(s.remote, s.estimate, s.actual))
		}()
		key := s.remote[:len(s.remote)-2]
		if d, err := l.Peek(context.Background(), key); err != nil || d.Remaining != s.left {
			t.Errorf("%s: %d left (%v), want %d", key, d.Remaining, err, s.left)
		}
	}
}

// notSettler is a limiter that can only check.
type notSettler struct{ ratelimit.Limiter }

// TestSetCostNothingToSettle: SetCost reports false, and nothing is
// settled, without WithCost, for a limiter that cannot settle, for a
// request Shadow admitted over its limit, after the handler returned,
// and for a negative cost.
func TestSetCostNothingToSettle(t *testing.T) {
	rdb, _ := frozen(t)
	var late context.Context
	probe := func(got *[]bool, actual int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*got = append(*got, httplimit.SetCost(r.Context(), actual))
			late = r.Context()
		})
	}
	tests := []struct {
		name   string
		lim    ratelimit.Limit
		opts   func(l *algorithms.Limiter) (ratelimit.Limiter, []httplimit.Option)
		actual int
		want   []bool // SetCost's answers over three requests
		left   int
	}{
		{"without WithCost", ratelimit.PerMinute(10), func(l *algorithms.Limiter) (ratelimit.Limiter, []httplimit.Option) {
			return l, nil
		}, 5, []bool{false, false, false}, 7},
		{"a limiter that cannot settle", ratelimit.PerMinute(10), func(l *algorithms.Limiter) (ratelimit.Limiter, []httplimit.Option) {
			return notSettler{l}, []httplimit.Option{httplimit.WithCost(estimate)}
		}, 5, []bool{false, false, false}, 7},
		{"Shadow over the limit", ratelimit.PerMinute(2), func(l *algorithms.Limiter) (ratelimit.Limiter, []httplimit.Option) {
			return l, []httplimit.Option{httplimit.WithCost(estimate), httplimit.WithStrategy(reject.NewShadow(nil))}
		}, 1, []bool{true, true, false}, 0},
		{"a negative cost", ratelimit.PerMinute(10), func(l *algorithms.Limiter) (ratelimit.Limiter, []httplimit.Option) {
			return l, []httplimit.Option{httplimit.WithCost(estimate)}
		}, -1, []bool{false, false, false}, 7},
	}
	for i, tt := range tests {
		l := newLimiter(t, rdb, tt.lim)
		lim, opts := tt.opts(l)
		var got []bool
		h := httplimit.Limit(lim, opts...)(probe(&got, tt.actual))
		remote := fmt.Sprintf("203.0.113.%d:1", i+1)
		for range 3 {
			do(h, request{remote: remote})
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: SetCost returned %v, want %v", tt.name, got, tt.want)
		}
		if httplimit.SetCost(late, 0) {
			t.Errorf("%s: SetCost accepted a cost after the handler returned", tt.name)
		}
		if d, err := l.Peek(context.Background(), remote[:len(remote)-2]); err != nil || d.Remaining != tt.left {
			t.Errorf("%s: %d left (%v), want %d", tt.name, d.Remaining, err, tt.left)
		}
	}
	if httplimit.SetCost(context.Background(), 1) {
		t.Error("SetCost accepted a cost outside any request")
	}
}

// TestSettleFailure: a settle that fails is logged and leaves the
// response alone.
func TestSettleFailure(t *testing.T) {
	rdb, _ := frozen(t)
	l := newLimiter(t, rdb, ratelimit.PerMinute(10))
	var logs bytes.Buffer
	var accepted atomic.Int64
	h := httplimit.Limit(l, httplimit.WithCost(estimate), httplimit.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))(reporting(&accepted))
	// A cost beyond ratelimit.MaxRate is one SettleN refuses.
	rec := do(h, costly("203.0.113.7:1", 1, ratelimit.MaxRate+1))
	if rec.Code != 200 || rec.Body.String() != "done" || accepted.Load() != 1 {
		t.Errorf("response: %d %q, %d costs accepted; want 200 done 1", rec.Code, rec.Body, accepted.Load())
	}
	if !bytes.Contains(logs.Bytes(), []byte("httplimit: settle failed")) || !bytes.Contains(logs.Bytes(), []byte("actual=")) {
		t.Errorf("logged %q, want the settle failure", logs.String())
	}
	if d, err := l.Peek(context.Background(), "203.0.113.7"); err != nil || d.Remaining != 9 {
		t.Errorf("%d left (%v), want 9: the estimate stays spent", d.Remaining, err)
	}
}

// TestSettleTimeout: the settle's context has a deadline of the settle
// timeout (2 s), and is not the request's.
func TestSettleTimeout(t *testing.T) {
	const want = 2 * time.Second
	s := &recordingSettler{}
	h := httplimit.Limit(s, httplimit.WithCost(estimate))(reporting(new(atomic.Int64)))
	start := time.Now()
	do(h, costly("203.0.113.7:1", 3, 4))
	end := time.Now()
	if s.calls != 1 || s.reserved != 3 || s.actual != 4 || s.key != "203.0.113.7" {
		t.Fatalf("settled %+v, want one SettleN(203.0.113.7, 3, 4)", s)
	}
	if s.deadline.Before(start.Add(want)) || s.deadline.After(end.Add(want)) {
		t.Errorf("settle deadline %v after the request, want %v", s.deadline.Sub(start), want)
	}
}

// recordingSettler admits every request and records its one SettleN.
type recordingSettler struct {
	calls            int
	key              string
	reserved, actual int
	deadline         time.Time
}

func (s *recordingSettler) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return s.AllowN(ctx, key, 1)
}

func (s *recordingSettler) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	return ratelimit.Decision{Allowed: true, Limit: ratelimit.PerMinute(100), Remaining: 99}, nil
}

func (s *recordingSettler) SettleN(ctx context.Context, key string, reserved, actual int) error {
	s.calls++
	s.key, s.reserved, s.actual = key, reserved, actual
	s.deadline, _ = ctx.Deadline()
	if ctx.Err() != nil {
		return errors.New("settle context already done")
	}
	return nil
}

// TestCostOverBurst: an estimate no wait could admit is refused with 403,
// whether the limit is one limiter's or a tier's.
func TestCostOverBurst(t *testing.T) {
	rdb, _ := frozen(t)
	l := newLimiter(t, rdb, ratelimit.PerMinute(10))
	var accepted atomic.Int64
	tl, _ := setup(t, false)
	for name, h := range map[string]http.Handler{
		"Limit": httplimit.Limit(l, httplimit.WithCost(estimate))(reporting(&accepted)),
		"New":   httplimit.New(tl, httplimit.WithCost(estimate))(reporting(&accepted)),
	} {
		rec := do(h, costly("203.0.113.7:1", 11, 1))
		if rec.Code != 403 || rec.Body.String() != "request costs more than the rate limit allows\n" {
			t.Errorf("%s: %d %q, want 403", name, rec.Code, rec.Body)
		}
	}
	// A cost below 1 counts as 1.
	h := httplimit.Limit(l, httplimit.WithCost(func(*http.Request) int { return -3 }))(hello)
	do(h, request{remote: "203.0.113.8:1"})
	if d, err := l.Peek(context.Background(), "203.0.113.8"); err != nil || d.Remaining != 9 {
		t.Errorf("cost -3: %d left (%v), want 9", d.Remaining, err)
	}
}

// TestSettleConcurrentRealRedis: three instances × three clients at once
// on one real redis-server, each reserving 1 and using 4 until refused:
// the key is charged exactly 4 per admission, and the admissions stop
// within what the requests in flight can overspend: 100 ≤ 4 × admitted ≤
// 100 + 3 × 9.
func TestSettleConcurrentRealRedis(t *testing.T) {
	srv := redistest.Start(t)
	for _, alg := range []algorithms.Algorithm{algorithms.TokenBucket, algorithms.GCRA, algorithms.FixedWindow} {
		t.Run(alg.Name(), func(t *testing.T) {
			ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
			if err != nil {
				t.Fatal(err)
			}
			var accepted, admitted atomic.Int64
			var peek *algorithms.Limiter
			var wg sync.WaitGroup
			for range 3 {
				rdb := srv.Client()
				t.Cleanup(func() { rdb.Close() })
				l := newLimiter(t, rdb, ratelimit.Per(100, ratelimit.MaxPeriod), algorithms.WithAlgorithm(alg), algorithms.WithKeyspace(ks))
				peek = l
				h := httplimit.Limit(l, httplimit.WithCost(estimate))(reporting(&accepted))
				for range 3 {
					wg.Go(func() {
						for do(h, costly("203.0.113.7:1", 1, 4)).Code == 200 {
							admitted.Add(1)
						}
					})
				}
			}
			wg.Wait()
			k := admitted.Load()
			if 4*k < 100 || 4*k > 100+3*9 || accepted.Load() != k {
				t.Fatalf("%d admitted (%d costs reported): 4 × admitted outside [100, 127]", k, accepted.Load())
			}
			d, err := peek.Peek(context.Background(), "203.0.113.7")
			if err != nil || d.Allowed {
				t.Fatalf("after: %+v %v, want the key spent", d, err)
			}
			// What Redis holds: exactly 4 per admission.
			rkey, err := ks.ClientKey("203.0.113.7", alg.Name())
			if err != nil {
				t.Fatal(err)
			}
			rdb := srv.Client()
			defer rdb.Close()
			switch alg {
			case algorithms.FixedWindow:
				if c, err := rdb.HGet(t.Context(), rkey, "c").Int64(); err != nil || c != 4*k {
					t.Errorf("window count %d (%v), want %d", c, err, 4*k)
				}
			case algorithms.TokenBucket: // nothing refills a token in 3.66 days
				if tok, err := rdb.HGet(t.Context(), rkey, "t").Float64(); err != nil || tok < float64(100-4*k) || tok >= float64(100-4*k)+1 {
					t.Errorf("tokens %v (%v), want %d and a fraction", tok, err, 100-4*k)
				}
			}
		})
	}
}

// TestResponseCost: behind a reverse proxy, the cost is read from the
// upstream's header or trailer once the handler returns; SetCost wins; a
// response that does not say, or a handler that panicked, keeps the
// estimate.
func TestResponseCost(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/header":
			w.Header().Set("X-Usage", "7")
		case "/trailer":
			w.Header().Set("Trailer", "X-Usage")
			defer w.Header().Set("X-Usage", "2")
		}
		w.Write([]byte("answer"))
	}))
	defer upstream.Close()
	target, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	usage := func(_ *http.Request, h http.Header) (int, bool) {
		n, err := strconv.Atoi(h.Get("X-Usage"))
		return n, err == nil
	}
	rdb, _ := frozen(t)
	l := newLimiter(t, rdb, ratelimit.PerMinute(10))
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reported":
			httplimit.SetCost(r.Context(), 3)
			w.Header().Set("X-Usage", "9")
		case "/panic":
			w.Header().Set("X-Usage", "9")
			panic(http.ErrAbortHandler)
		default:
			proxy.ServeHTTP(w, r)
		}
	}
	steps := []struct {
		path     string
		estimate bool // WithCost: X-Estimate 5; else 1
		left     int
	}{
		{"/header", false, 3},  // 1 reserved, 7 used
		{"/trailer", true, 8},  // 5 reserved, 2 used
		{"/silent", true, 5},   // the estimate stays
		{"/reported", true, 7}, // SetCost's 3, not the header's 9
		{"/panic", true, 5},
	}
	for i, s := range steps {
		opts := []httplimit.Option{httplimit.WithResponseCost(usage), nil}
		if s.estimate {
			opts[1] = httplimit.WithCost(estimate)
		}
		h := httplimit.Limit(l, opts...)(http.HandlerFunc(handler))
		remote := fmt.Sprintf("203.0.113.%d", i+1)
		req := httptest.NewRequest("GET", s.path, nil)
		req.RemoteAddr = remote + ":1"
		req.Header.Set("X-Estimate", "5")
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil && s.path != "/panic" {
					t.Errorf("%s: panic %v", s.path, p)
				}
			}()
			h.ServeHTTP(rec, req)
		}()
		if s.path != "/panic" && s.path != "/reported" && rec.Body.String() != "answer" {
			t.Errorf("%s: %d %q", s.path, rec.Code, rec.Body)
		}
		if d, err := l.Peek(context.Background(), remote); err != nil || d.Remaining != s.left {
			t.Errorf("%s: %d left (%v), want %d", s.path, d.Remaining, err, s.left)
		}
	}
}
