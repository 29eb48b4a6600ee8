package httplimit_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

const testConfig = `
default_tier: free
tiers:
  free:
    limits:
      second: {rate: 2, period: 1s, algorithm: token_bucket}
  pro:
    limits:
      second: {rate: 5, period: 1s, burst: 10, algorithm: token_bucket}
      day: {rate: 1000, period: 1d, algorithm: token_bucket}
clients:
  pro-key: pro
`

// testTimeout bounds each Redis call of the tests' limiters. It is
// generous: on a loaded machine under -race a slow reply must not become a
// store failure (which would fail open and change the outcome).
const testTimeout = 5 * time.Minute

// setup returns a Limiter of testConfig on a fresh miniredis whose clock
// is frozen (no refill), unless live is set.
func setup(t *testing.T, live bool) (*tiers.Limiter, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	if !live {
		mr.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	cfg, err := tiers.Parse("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tiers.New(tiers.Direct(rdb, algorithms.WithTimeout(testTimeout)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l, mr
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })

type request struct {
	remote string
	header http.Header
}

func do(h http.Handler, r request) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/", nil)
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMiddlewareHeadersAnd429(t *testing.T) {
	l, _ := setup(t, false)
	h := httplimit.New(l)(hello)
	client := request{remote: "203.0.113.7:1234"}
	type want struct {
		code             int
		rateLimit, retry string
		body             string
	}
	steps := []want{
		{200, `"free.second";r=1;t=1`, "", "hello"},
		{200, `"free.second";r=0;t=1`, "", "hello"},
		{429, `"free.second";r=0;t=1`, "1", "rate limit exceeded\n"},
	}
	for i, s := range steps {
		rec := do(h, client)
		if rec.Code != s.code || rec.Header().Get("RateLimit") != s.rateLimit ||
			rec.Header().Get("Retry-After") != s.retry || rec.Body.String() != s.body {
			t.Errorf("step %d: %d RateLimit %q Retry-After %q body %q; want %d %q %q %q", i,
				rec.Code, rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"), rec.Body.String(),
				s.code, s.rateLimit, s.retry, s.body)
		}
		if got := rec.Header().Get("RateLimit-Policy"); got != `"free.second";q=2;w=1` {
			t.Errorf("step %d: RateLimit-Policy %q", i, got)
		}
	}
	// Another client has its own budget.
	if rec := do(h, request{remote: "203.0.113.8:1234"}); rec.Code != 200 {
		t.Errorf("second client: %d, want 200", rec.Code)
	}
}

func TestMiddlewareAPIKeyAndTiers(t *testing.T) {
	l, _ := setup(t, false)
	h := httplimit.New(l, httplimit.WithKey(httplimit.Header("X-API-Key")))(hello)
	rec := do(h, request{header: http.Header{"X-Api-Key": {"pro-key"}}})
	if rec.Code != 200 {
		t.Fatalf("pro client: %d", rec.Code)
	}
	if got, want := rec.Header().Get("RateLimit-Policy"), `"pro.second";q=10;w=2, "pro.day";q=1000;w=86400`; got != want {
		t.Errorf("RateLimit-Policy = %s, want %s", got, want)
	}
	if got, want := rec.Header().Get("RateLimit"), `"pro.second";r=9;t=1, "pro.day";r=999;t=87`; got != want {
		t.Errorf("RateLimit = %s, want %s", got, want)
	}
	// No key: 400, not a limit and not a 500.
	if rec := do(h, request{}); rec.Code != http.StatusBadRequest {
		t.Errorf("request without API key: %d, want 400", rec.Code)
	}
}

func TestMiddlewareTierFromRequest(t *testing.T) {
	l, _ := setup(t, false)
	h := httplimit.New(l, httplimit.WithTier(func(r *http.Request) (string, error) {
		return r.Header.Get("X-Plan"), nil
	}))(hello)
	rec := do(h, request{remote: "198.51.100.1:1", header: http.Header{"X-Plan": {"pro"}}})
	if !strings.HasPrefix(rec.Header().Get("RateLimit"), `"pro.second";r=9`) {
		t.Errorf("X-Plan: pro gave RateLimit %q", rec.Header().Get("RateLimit"))
	}
	rec = do(h, request{remote: "198.51.100.1:1"})
	if rec.Header().Get("RateLimit") != `"free.second";r=1;t=1` {
		t.Errorf("no X-Plan gave RateLimit %q, want the default tier", rec.Header().Get("RateLimit"))
	}
}

// TestMiddlewareTrustedProxies: behind a trusted proxy each client has its
// own budget; a client forging X-Forwarded-For cannot escape its limit.
func TestMiddlewareTrustedProxies(t *testing.T) {
	l, _ := setup(t, false)
	h := httplimit.New(l, httplimit.WithKey(httplimit.ClientIP(netip.MustParsePrefix("10.0.0.0/8"))))(hello)
	proxy := "10.1.2.3:4000"
	for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
		for i := range 2 {
			rec := do(h, request{remote: proxy, header: http.Header{"X-Forwarded-For": {client}}})
			if rec.Code != 200 {
				t.Errorf("client %s request %d via proxy: %d, want 200", client, i, rec.Code)
			}
		}
	}
	// A direct client rotating forged X-Forwarded-For values is still one key.
	codes := ""
	for i := range 4 {
		rec := do(h, request{remote: "203.0.113.50:999", header: http.Header{"X-Forwarded-For": {fmt.Sprintf("192.0.2.%d", i)}}})
		codes += fmt.Sprint(rec.Code, " ")
	}
	if codes != "200 200 429 429 " {
		t.Errorf("spoofing client got %s, want 200 200 429 429", codes)
	}
	// Through the proxy, a forged entry left of the real client is ignored.
	codes = ""
	for i := range 3 {
		rec := do(h, request{remote: proxy, header: http.Header{"X-Forwarded-For": {fmt.Sprintf("192.0.2.%d, 198.51.100.3", i)}}})
		codes += fmt.Sprint(rec.Code, " ")
	}
	if codes != "200 200 429 " {
		t.Errorf("client forging entries through the proxy got %s, want 200 200 429", codes)
	}
}

func TestMiddlewareStrategies(t *testing.T) {
	client := request{remote: "203.0.113.7:1234"}
	t.Run("status", func(t *testing.T) {
		l, _ := setup(t, false)
		h := httplimit.New(l, httplimit.WithStrategy(reject.Status(503, "application/json", []byte(`{"error":"busy"}`))))(hello)
		do(h, client)
		do(h, client)
		rec := do(h, client)
		if rec.Code != 503 || rec.Body.String() != `{"error":"busy"}` || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("Retry-After") != "1" {
			t.Errorf("Status strategy: %d %q %q Retry-After %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"))
		}
	})
	t.Run("shadow", func(t *testing.T) {
		l, _ := setup(t, false)
		s := reject.NewShadow(nil)
		h := httplimit.New(l, httplimit.WithStrategy(s))(hello)
		for i := range 4 {
			if rec := do(h, client); rec.Code != 200 {
				t.Errorf("request %d under Shadow: %d, want 200", i, rec.Code)
			}
		}
		if s.Count() != 2 {
			t.Errorf("Shadow counted %d, want 2 over the limit", s.Count())
		}
	})
	t.Run("wait", func(t *testing.T) {
		l, _ := setup(t, true) // live clock: 2/s refills a token every 500ms
		h := httplimit.New(l, httplimit.WithStrategy(reject.Wait(reject.WithMaxWait(5*time.Second))))(hello)
		for i := range 3 {
			if rec := do(h, client); rec.Code != 200 {
				t.Errorf("request %d under Wait: %d, want 200 after waiting", i, rec.Code)
			}
		}
	})
	t.Run("queue", func(t *testing.T) {
		l, _ := setup(t, true)
		q := reject.NewQueue(reject.WithMaxWait(5*time.Second), reject.WithQueueLimits(1, 0))
		defer q.Close(context.Background())
		h := httplimit.New(l, httplimit.WithStrategy(q))(hello)
		do(h, client)
		do(h, client)
		var wg sync.WaitGroup
		codes := make([]int, 3)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = do(h, client).Code
			}()
		}
		wg.Wait()
		ok, refused := 0, 0
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 429:
				refused++
			}
		}
		// One queues; the others find the queue of size 1 full, unless a
		// token came back first. None may fail otherwise.
		if ok < 1 || ok+refused != 3 {
			t.Errorf("codes %v: want at least one served from the queue, the rest 429", codes)
		}
	})
}

func TestMiddlewareFailurePolicy(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	l, mr := setup(t, false)
	mr.Close() // Redis is gone
	client := request{remote: "203.0.113.7:1234"}

	open := httplimit.New(l, httplimit.WithLogger(logger))(hello)
	rec := do(open, client)
	if rec.Code != 200 || rec.Body.String() != "hello" {
		t.Errorf("fail open: %d %q, want the request served", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "rate limit check failed") || !strings.Contains(logs.String(), "store=true") {
		t.Errorf("fail open logged %q; want the store failure", logs.String())
	}
	if rec.Header().Get("RateLimit") != "" {
		t.Errorf("unlimited response carries RateLimit %q", rec.Header().Get("RateLimit"))
	}

	closed := httplimit.New(l, httplimit.WithFailurePolicy(ratelimit.FailClosed), httplimit.WithLogger(logger))(hello)
	rec = do(closed, client)
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() == "" {
		t.Errorf("fail closed: %d %q, want 503 with a body", rec.Code, rec.Body.String())
	}
}

// quiet drops go-redis's own log lines (dial failures in the failure
// policy test, where Redis is gone on purpose).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}
