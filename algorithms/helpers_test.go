package algorithms

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// t0 is the first instant of the table and differential tests: 2026-01-01
// 00:00:00 UTC plus 123456 µs, so t0 is 123456 µs into a window of 1 s,
// 1 min, 1 h and 90 s alike.
const t0 = int64(1767225600_123456)

// miniServer returns an embedded Redis whose clock is frozen at nowUS and
// moves only with setNow, and whose TTLs follow that clock.
func miniServer(t *testing.T, nowUS int64) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	setNow(mr, nowUS)
	mr.ClockTTL(true)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

// setNow sets the clock of mr, which scripts read with TIME.
func setNow(mr *miniredis.Miniredis, nowUS int64) { mr.SetTime(time.UnixMicro(nowUS)) }

// realServer starts a redis-server for t and returns a client and a
// keyspace unique to t.
func realServer(t *testing.T) (*redistest.Server, *redis.Client, ratelimit.Keyspace) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, srv.Client(), keyspace(t)
}

// keyspace returns a keyspace whose prefix is unique to t.
func keyspace(t *testing.T) ratelimit.Keyspace {
	t.Helper()
	ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// clientKey returns the Redis key of client key under ks for alg.
func clientKey(t testing.TB, ks ratelimit.Keyspace, key string, alg Algorithm) string {
	t.Helper()
	rkey, err := ks.ClientKey(key, alg.Name())
	if err != nil {
		t.Fatal(err)
	}
	return rkey
}

// newLimiter returns a Limiter or fails t.
func newLimiter(t testing.TB, rdb redis.Scripter, lim ratelimit.Limit, opts ...Option) *Limiter {
	t.Helper()
	l, err := NewLimiter(rdb, lim, opts...)
	if err != nil {
		t.Fatalf("NewLimiter(%v): %v", lim, err)
	}
	return l
}
