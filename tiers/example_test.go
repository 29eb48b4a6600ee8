package tiers_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// A free and a pro plan from a YAML file, enforced by the HTTP middleware
// on clients identified by an API key. (An in-memory miniredis with a
// stopped clock stands in for Redis, so that nothing refills.)
func Example_httpMiddleware() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	// free: 5/s burst 10, 1,000/day, 2,000/s for all free clients together;
	// pro: 100/s burst 200, 100,000/day. Unknown keys are free. The daily
	// quotas are fixed windows, reset at midnight UTC: 12 hours (43200 s)
	// from the clock's noon.
	cfg, err := tiers.LoadFile("testdata/tiers.yaml")
	if err != nil {
		log.Fatal(err)
	}
	// Per-request limiters, each Redis call bounded by one second.
	limiter, err := tiers.New(tiers.Direct(rdb, algorithms.WithTimeout(time.Second)), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer limiter.Close(context.Background())

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	handler := httplimit.New(limiter, httplimit.WithKey(httplimit.Header("X-API-Key")))(api)

	get := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-API-Key", key)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}

	rec := get("free-client")
	fmt.Println(rec.Code, rec.Body.String())
	fmt.Println("RateLimit-Policy:", rec.Header().Get("RateLimit-Policy"))
	fmt.Println("RateLimit:", rec.Header().Get("RateLimit"))

	for range 9 { // the rest of the burst of 10
		get("free-client")
	}
	rec = get("free-client")
	fmt.Println(rec.Code, "Retry-After:", rec.Header().Get("Retry-After"))
	fmt.Println("RateLimit:", rec.Header().Get("RateLimit"))

	rec = get("pro-key-1")
	fmt.Println(rec.Code, "RateLimit:", rec.Header().Get("RateLimit"))

	// Output:
	// 200 hello
	//
	// RateLimit-Policy: "free.second";q=10;w=2, "free.day";q=1000;w=86400, "free.all-free";q=2000;w=1
	// RateLimit: "free.second";r=9;t=1, "free.day";r=999;t=43200, "free.all-free";r=1999;t=1
	// 429 Retry-After: 1
	// RateLimit: "free.second";r=0;t=1
	// 200 RateLimit: "pro.second";r=199;t=1, "pro.day";r=99999;t=43200
}
