package httplimit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// One limit for every client, keyed by client IP: 2 requests a minute.
// The third request from an address is refused with 429, and the headers
// say when to come back: a token returns every 30 s.
func ExampleLimit() {
	// An embedded Redis stands in for a real server. Its clock is stopped,
	// so that nothing refills and the headers are exact.
	rdb, stop := stoppedRedis()
	defer stop()

	// A generous timeout for each Redis call, so that the output does not
	// depend on how busy the machine is (the default is 250 ms).
	lim, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(2), algorithms.WithTimeout(time.Minute))
	if err != nil {
		panic(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	handler := httplimit.Limit(lim)(api)

	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "203.0.113.7:51234"
		show(handler, req)
	}
	// Output:
	// 200 hello
	//   RateLimit: "default";r=1;t=30
	// 200 hello
	//   RateLimit: "default";r=0;t=30
	// 429 rate limit exceeded
	//   RateLimit: "default";r=0;t=30
	//   RateLimit-Policy: "default";q=2;w=60
	//   Retry-After: 30
}

// Two limits stacked on one handler: 5 requests a minute per client IP
// around 2 a minute per API key, each named with WithPolicyName. Every
// response describes both, the outer's items first; the third request is
// refused by the API key's limit.
func ExampleWithPolicyName() {
	rdb, stop := stoppedRedis()
	defer stop()

	newLimiter := func(lim ratelimit.Limit, prefix string) *algorithms.Limiter {
		ks, err := ratelimit.NewKeyspace(prefix) // the two limits' keys apart
		if err != nil {
			panic(err)
		}
		l, err := algorithms.NewLimiter(rdb, lim, algorithms.WithKeyspace(ks), algorithms.WithTimeout(time.Minute))
		if err != nil {
			panic(err)
		}
		return l
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	perKey := httplimit.Limit(newLimiter(ratelimit.PerMinute(2), "key:"),
		httplimit.WithKey(httplimit.Header("X-API-Key")), httplimit.WithPolicyName("key"))
	perIP := httplimit.Limit(newLimiter(ratelimit.PerMinute(5), "ip:"), httplimit.WithPolicyName("ip"))
	handler := perIP(perKey(api))

	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "203.0.113.7:51234"
		req.Header.Set("X-API-Key", "k1")
		show(handler, req)
	}
	// Output:
	// 200 hello
	//   RateLimit: "ip";r=4;t=12, "key";r=1;t=30
	// 200 hello
	//   RateLimit: "ip";r=3;t=12, "key";r=0;t=30
	// 429 rate limit exceeded
	//   RateLimit: "ip";r=2;t=12, "key";r=0;t=30
	//   RateLimit-Policy: "ip";q=5;w=60, "key";q=2;w=60
	//   Retry-After: 30
}

// A handler behind the middleware, with one tier of 2 requests a minute
// per API key: the third request of a key is refused with 429 and the
// headers that say when to come back. A token comes back every 30 s, so t
// (the time until more quota) and Retry-After say 30.
func ExampleNew() {
	// An embedded Redis stands in for a real server. Its clock is stopped,
	// so that nothing refills and the headers are exact.
	rdb, stop := stoppedRedis()
	defer stop()

	cfg := tiers.Config{
		Tiers: []tiers.Tier{{
			Name:   "free",
			Limits: []tiers.Limit{tiers.Client("minute", ratelimit.PerMinute(2)).WithAlgorithm(algorithms.GCRA)},
		}},
		DefaultTier: "free", // every client key is on the free tier
	}
	limiter, err := tiers.New(tiers.Direct(rdb, algorithms.WithTimeout(time.Minute)), cfg)
	if err != nil {
		panic(err)
	}
	defer limiter.Close(context.Background())

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	handler := httplimit.New(limiter, httplimit.WithKey(httplimit.Header("X-API-Key")))(api)

	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-API-Key", "key-1")
		show(handler, req)
	}
	// Output:
	// 200 hello
	//   RateLimit: "free.minute";r=1;t=30
	// 200 hello
	//   RateLimit: "free.minute";r=0;t=30
	// 429 rate limit exceeded
	//   RateLimit: "free.minute";r=0;t=30
	//   RateLimit-Policy: "free.minute";q=2;w=60
	//   Retry-After: 30
}

// An LLM gateway knows what a request cost only when the model has
// answered. WithCost reserves an estimate (the request's max_tokens, here
// a header) before the handler runs; the handler reports the tokens used
// with SetCost, and the middleware settles the difference once it
// returns: a refund when the request cost less, a charge, into debt if
// need be, when it cost more.
func ExampleSetCost() {
	rdb, stop := stoppedRedis() // nothing refills
	defer stop()

	// 1,000 tokens an hour per API key.
	lim, err := algorithms.NewLimiter(rdb, ratelimit.PerHour(1000), algorithms.WithTimeout(time.Minute))
	if err != nil {
		panic(err)
	}
	maxTokens := func(r *http.Request) int {
		n, _ := strconv.Atoi(r.Header.Get("X-Max-Tokens"))
		return n
	}
	llm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		used, _ := strconv.Atoi(r.Header.Get("X-Would-Use")) // what the model used
		httplimit.SetCost(r.Context(), used)
		fmt.Fprintf(w, "used %d tokens", used)
	})
	handler := httplimit.Limit(lim,
		httplimit.WithKey(httplimit.Header("X-API-Key")),
		httplimit.WithCost(maxTokens),
	)(llm)

	for _, c := range []struct{ max, used string }{
		{"500", "120"}, // reserves 500, gives back 380
		{"500", "700"}, // reserves 500, charges 200 more
		{"500", "100"}, // 180 left: refused
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat", nil)
		req.Header.Set("X-API-Key", "team-a")
		req.Header.Set("X-Max-Tokens", c.max)
		req.Header.Set("X-Would-Use", c.used)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		d, err := lim.Peek(context.Background(), "team-a")
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d %-15s tokens left: %d\n", rec.Code, strings.TrimSpace(rec.Body.String()), d.Remaining)
	}
	// Output:
	// 200 used 120 tokens tokens left: 880
	// 200 used 700 tokens tokens left: 180
	// 429 rate limit exceeded tokens left: 180
}

// stoppedRedis returns a client of an embedded Redis (miniredis) whose
// clock is stopped at noon on 2026-01-01, so that nothing refills, and a
// function that closes both.
func stoppedRedis() (*redis.Client, func()) {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return rdb, func() { rdb.Close(); mr.Close() }
}

// show serves req with h and prints the status, the body and the
// RateLimit field, and for a refusal RateLimit-Policy and Retry-After.
func show(h http.Handler, req *http.Request) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Print(rec.Code, " ", rec.Body.String())
	fmt.Println("  RateLimit:", rec.Header().Get(httplimit.HeaderRateLimit))
	if rec.Code == http.StatusTooManyRequests {
		fmt.Println("  RateLimit-Policy:", rec.Header().Get(httplimit.HeaderRateLimitPolicy))
		fmt.Println("  Retry-After:", rec.Header().Get(httplimit.HeaderRetryAfter))
	}
}
