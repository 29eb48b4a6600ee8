package httplimit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// backends runs f on miniredis and on a real redis-server.
func backends(t *testing.T, f func(t *testing.T, rdb redis.Scripter)) {
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		mr.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { rdb.Close() })
		f(t, rdb)
	})
	t.Run("redis-server", func(t *testing.T) {
		rdb := redistest.Start(t).Client()
		t.Cleanup(func() { rdb.Close() })
		f(t, rdb)
	})
}

// limiterFrom parses a YAML config and enforces it on rdb (a server of the
// test's own).
func limiterFrom(t *testing.T, rdb redis.Scripter, yaml string) *tiers.Limiter {
	t.Helper()
	cfg, err := tiers.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tiers.New(tiers.Direct(rdb, algorithms.WithTimeout(testTimeout)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// counting wraps hello and counts the requests that reach it.
func counting(n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		hello.ServeHTTP(w, r)
	})
}

// TestUnassignedClientsRefused (issue 11, item 1): with no default tier, a
// client that no rule assigns is refused with 403 and never reaches the
// handler, under the default failure policy (fail open) as under fail
// closed. So is a client whose WithTier function fails or names a tier
// the config does not have.
func TestUnassignedClientsRefused(t *testing.T) {
	const cfg = `
tiers:
  paid:
    limits:
      second: {rate: 1, period: 1h}
clients:
  alice: paid
`
	backends(t, func(t *testing.T, rdb redis.Scripter) {
		l := limiterFrom(t, rdb, cfg)
		var served atomic.Int64
		quiet := httplimit.WithLogger(slog.New(slog.DiscardHandler))
		h := httplimit.New(l, quiet, httplimit.WithKey(httplimit.Header("X-Api-Key")))(counting(&served))
		codes := func(key string) map[int]int {
			got := map[int]int{}
			for range 50 {
				got[do(h, request{header: http.Header{"X-Api-Key": {key}}}).Code]++
			}
			return got
		}
		if got := codes("alice"); got[200] != 1 || got[429] != 49 {
			t.Errorf("alice: %v, want 1 served and 49 refused with 429", got)
		}
		served.Store(0)
		if got := codes("mallory"); got[http.StatusForbidden] != 50 || served.Load() != 0 {
			t.Errorf("unassigned client: %v, %d reached the handler; want 50 refused with 403 and none served", got, served.Load())
		}

		for _, tc := range []struct {
			name string
			tier func(*http.Request) (string, error)
		}{
			{"unknown tier name", func(*http.Request) (string, error) { return "gold", nil }},
			{"WithTier error", func(*http.Request) (string, error) { return "", errors.New("bad credential") }},
		} {
			served.Store(0)
			h := httplimit.New(l, quiet, httplimit.WithKey(httplimit.Header("X-Api-Key")), httplimit.WithTier(tc.tier))(counting(&served))
			refused := 0
			for i := range 20 {
				if do(h, request{header: http.Header{"X-Api-Key": {fmt.Sprint("k", i)}}}).Code == http.StatusForbidden {
					refused++
				}
			}
			if refused != 20 || served.Load() != 0 {
				t.Errorf("%s: %d of 20 refused with 403, %d served; want all refused", tc.name, refused, served.Load())
			}
		}
	})
}

// TestTierStoreErrorFollowsPolicy: a WithTier function whose error is a
// store failure (its own database down) follows the failure policy, like
// the limiter's store failures; other errors refuse (above).
func TestTierStoreErrorFollowsPolicy(t *testing.T) {
	l, _ := setup(t, false)
	down := func(*http.Request) (string, error) {
		return "", &ratelimit.StoreError{Op: "plan lookup", Key: "k", Err: errors.New("connection refused")}
	}
	for _, tt := range []struct {
		policy ratelimit.FailurePolicy
		code   int
		served int64
	}{{0, 200, 1}, {ratelimit.FailOpen, 200, 1}, {ratelimit.FailClosed, 503, 0}} {
		var served atomic.Int64
		h := httplimit.New(l, httplimit.WithTier(down), httplimit.WithFailurePolicy(tt.policy),
			httplimit.WithLogger(slog.New(slog.DiscardHandler)))(counting(&served))
		if rec := do(h, request{remote: "203.0.113.7:1"}); rec.Code != tt.code || served.Load() != tt.served {
			t.Errorf("policy %v: %d, %d served; want %d, %d", tt.policy, rec.Code, served.Load(), tt.code, tt.served)
		}
	}
}
