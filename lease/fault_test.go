package lease_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/faulttest"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// The fault tests run leasing limiters on a real redis-server and break
// the server while goroutines keep calling: kill and restart it, stall it,
// empty its script cache, or put a value of the wrong type at a limiter's
// key. They check that every call returns within the limiter's maximum
// wait, that the failure policy decides once the leased tokens are spent
// while Redis cannot answer, and that limiting goes back to Redis soon
// after it can.
//
// Time bounds here are correctness bounds, not performance targets: they
// hold on a loaded two-core machine under -race, and the measured figures
// are logged.

const (
	// faultRefillTimeout is the limiters' refill timeout, short so that
	// refills fail many times in a short test; a caller waits at most the
	// maximum wait (the default).
	faultRefillTimeout = 50 * time.Millisecond
	faultMaxWait       = lease.DefaultMaxWait
	// faultSlack is what a call may take beyond the maximum wait:
	// scheduling on a loaded machine, not Redis. The stalls last 2 s, so a
	// call that Redis held would still stand out.
	faultSlack = time.Second
	// faultRecovery bounds how long after Redis answers again the failure
	// policy may still decide: the breaker's cool-down (250 ms, +20%
	// jitter), a degraded key's retry (100 ms) and a refill.
	faultRecovery = time.Second
)

var faultPolicies = []ratelimit.FailurePolicy{ratelimit.FailClosed, ratelimit.FailOpen, ratelimit.FailLocal}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// faultKeyspace returns a keyspace unique to t.
func faultKeyspace(t *testing.T) ratelimit.Keyspace {
	t.Helper()
	ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// faultClient returns a client of srv that gives up dialling a dead
// server quickly and, unless cte is false, honours context deadlines. A
// client without ContextTimeoutEnabled gets socket timeouts far above the
// limiter's, so that only the limiter's own goroutine (internal/rcall)
// can bound its calls.
func faultClient(srv *redistest.Server, cte bool) *redis.Client {
	return srv.Client(func(o *redis.Options) {
		o.DialTimeout = 100 * time.Millisecond
		o.ContextTimeoutEnabled = cte
		if !cte {
			o.ReadTimeout = 3 * time.Second
			o.WriteTimeout = 3 * time.Second
		}
	})
}

// newFaultLimiter returns a leasing limiter closed when t ends, before
// the clients and servers started earlier in t are stopped.
func newFaultLimiter(t *testing.T, rdb redis.Scripter, lim ratelimit.Limit, opts ...lease.Option) *lease.Limiter {
	t.Helper()
	base := []lease.Option{lease.WithRefillTimeout(faultRefillTimeout), lease.WithLogger(quietLogger)}
	l, err := lease.New(rdb, lim, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

// recoveredAt returns when normal limiting resumed after since: the start
// of the first call at or after since that was admitted from a lease
// (Source local) with no error. Sporadic refills slower than the timeout
// on a loaded machine may still fall back after that, so it then checks
// that at least 80% of the calls from 200 ms later on were decided
// normally. It fails t if no call resumed.
func recoveredAt(t *testing.T, calls []faulttest.Call, since time.Time) time.Time {
	t.Helper()
	var at time.Time
	for _, c := range calls {
		if !c.Start.Before(since) && c.Err == nil && c.D.Allowed && c.D.Source != ratelimit.SourceFallback {
			at = c.Start
			break
		}
	}
	if at.IsZero() {
		t.Fatalf("no call after %v was admitted by a lease (Source local or redis)", since.Format("15:04:05.000"))
	}
	var normal, later int
	for _, c := range calls {
		if c.Start.After(at.Add(200 * time.Millisecond)) {
			later++
			if c.Err == nil && c.D.Source != ratelimit.SourceFallback {
				normal++
			}
		}
	}
	if later == 0 || normal < later*8/10 {
		t.Fatalf("after limiting resumed: %d of %d calls decided normally, want at least 80%%", normal, later)
	}
	return at
}

// TestFaultKillRestart kills Redis while goroutines call a leasing
// limiter and starts it again, empty, on the same port: no call outlives
// the maximum wait, leased tokens are served and then the failure policy
// decides while Redis is down, and leases from Redis serve again within
// faultRecovery of the restart.
func TestFaultKillRestart(t *testing.T) {
	for _, p := range faultPolicies {
		t.Run("policy="+p.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			rdb := faultClient(srv, true)
			lim := ratelimit.PerSecond(200)
			const instances = 4
			// Leases hold at most 5% of the burst: 10 tokens.
			const maxLease = 10
			l := newFaultLimiter(t, rdb, lim, lease.WithKeyspace(faultKeyspace(t)),
				lease.WithFailurePolicy(p), lease.WithInstances(instances))
			if d, err := l.Allow(t.Context(), "warm"); err != nil || !d.Allowed {
				t.Fatalf("warm-up: %+v, %v", d, err)
			}

			// Four goroutines at about 1,000 calls/s each, on four keys:
			// far above the limit, so that FailLocal's bound is tested.
			keys := []string{"a", "b", "c", "d"}
			run := faulttest.StartLoad(4, keys, time.Millisecond, l.Allow)
			time.Sleep(200 * time.Millisecond)
			srv.Kill()
			down := time.Now()
			time.Sleep(500 * time.Millisecond)
			restart := time.Now()
			srv.Restart()
			up := time.Now()
			time.Sleep(faultRecovery + 300*time.Millisecond)
			calls := run.Finish()

			faulttest.CheckBounded(t, "all calls", calls, faultMaxWait+faultSlack)
			dc := faulttest.Between(calls, down, restart)
			if len(dc) < 10 { // the load ran; a loaded machine makes fewer calls
				t.Fatalf("only %d calls while Redis was down", len(dc))
			}
			leased := map[string]int{}
			for _, c := range dc {
				switch {
				case c.Fallback():
				case c.D.Source == ratelimit.SourceLocal && c.Err == nil:
					if c.D.Allowed {
						leased[c.Key]++
					}
				default:
					t.Fatalf("while Redis was down: %+v, %v; want Source fallback, or local from a lease or a remembered denial", c.D, c.Err)
				}
			}
			for key, n := range leased {
				// What the key held when Redis died, and one refill in flight.
				if n > 2*maxLease {
					t.Errorf("key %s: %d admissions from leases while Redis was down, want at most %d", key, n, 2*maxLease)
				}
			}
			// FailLocal admits at the share Redis granted this instance,
			// at most the whole limit (here it is the only instance).
			n := faulttest.CheckPolicy(t, p, calls, lim)
			if n == 0 {
				t.Fatal("the failure policy decided nothing while Redis was down")
			}
			at := recoveredAt(t, calls, up)
			if d := at.Sub(up); d > faultRecovery {
				t.Errorf("limiting resumed %v after the restart, want within %v", d, faultRecovery)
			}
			if s := l.Stats(); s.Breaker != "closed" || s.RefillErrors == 0 {
				t.Errorf("stats after recovery %+v: want refill errors counted and the breaker closed", s)
			}
			p50, p99, maxd := faulttest.Latencies(dc)
			t.Logf("policy %v: %d calls while Redis was down (%d decided by the policy in all, %d served from leases): latency p50 %v, p99 %v, max %v; restart took %v; leases served again %v after it",
				p, len(dc), n, leased["a"]+leased["b"]+leased["c"]+leased["d"], p50, p99, maxd,
				up.Sub(restart).Round(time.Millisecond), at.Sub(up).Round(time.Millisecond))
		})
	}
}

// TestFaultSlowRedis stalls Redis, first with CLIENT PAUSE and then with
// DEBUG SLEEP from another client, while goroutines call leasing limiters
// of each policy through a client that honours context deadlines and one
// that does not (whose calls internal/rcall bounds from its own
// goroutine). Every call returns within the maximum wait plus slack, the
// policy decides what leases cannot serve during the stall, and leases
// serve again soon after it.
func TestFaultSlowRedis(t *testing.T) {
	srv := redistest.Start(t)
	ks := faultKeyspace(t)
	admin := srv.Client(func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
	lim := ratelimit.PerSecond(1000)
	type limiter struct {
		name   string
		policy ratelimit.FailurePolicy
		l      *lease.Limiter
	}
	var ls []limiter
	for _, cte := range []bool{true, false} {
		rdb := faultClient(srv, cte)
		for _, p := range faultPolicies {
			// Each limiter has keys of its own: they do not share buckets.
			ks, err := ratelimit.NewKeyspace(fmt.Sprintf("%s%v.%v:", ks.Prefix(), cte, p))
			if err != nil {
				t.Fatal(err)
			}
			l := newFaultLimiter(t, rdb, lim, lease.WithKeyspace(ks), lease.WithFailurePolicy(p), lease.WithInstances(2))
			ls = append(ls, limiter{fmt.Sprintf("ContextTimeoutEnabled=%v/policy=%v", cte, p), p, l})
		}
	}
	for _, x := range ls {
		if _, err := x.l.Allow(t.Context(), "warm"); err != nil {
			t.Fatalf("%s: warm-up: %v", x.name, err)
		}
	}

	var sleeper sync.WaitGroup
	defer sleeper.Wait()
	for _, stall := range []struct {
		name  string
		start func()
	}{
		{"CLIENT PAUSE", func() { srv.Pause(2 * time.Second) }},
		{"DEBUG SLEEP", func() {
			sleeper.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := admin.Do(ctx, "DEBUG", "SLEEP", "2").Err(); err != nil {
					t.Errorf("DEBUG SLEEP: %v", err)
				}
			})
			time.Sleep(20 * time.Millisecond) // let the server start sleeping
		}},
	} {
		t.Run(strings.ReplaceAll(stall.name, " ", "_"), func(t *testing.T) {
			runs := make([]*faulttest.Load, len(ls))
			for i, x := range ls {
				runs[i] = faulttest.StartLoad(2, []string{"s1", "s2"}, 2*time.Millisecond, x.l.Allow)
			}
			time.Sleep(100 * time.Millisecond)
			stalled := time.Now()
			stall.start()
			time.Sleep(1900 * time.Millisecond)
			over := time.Now().Add(150 * time.Millisecond) // the stall lasts 2 s
			time.Sleep(faultRecovery + 400*time.Millisecond)
			for i, x := range ls {
				calls := runs[i].Finish()
				faulttest.CheckBounded(t, x.name, calls, faultMaxWait+faultSlack)
				sc := faulttest.Between(calls, stalled.Add(20*time.Millisecond), over.Add(-150*time.Millisecond))
				n := faulttest.CheckPolicy(t, x.policy, calls, lim.Share(2))
				if n == 0 {
					t.Errorf("%s: the failure policy decided nothing during the stall", x.name)
				}
				at := recoveredAt(t, calls, over)
				if d := at.Sub(over); d > faultRecovery {
					t.Errorf("%s: limiting resumed %v after the stall, want within %v", x.name, d, faultRecovery)
				}
				p50, p99, maxd := faulttest.Latencies(sc)
				t.Logf("%s: %d calls during the stall (%d decided by the policy in all): latency p50 %v, p99 %v, max %v; leases served again %v after it",
					x.name, len(sc), n, p50, p99, maxd, at.Sub(over).Round(time.Millisecond))
			}
		})
	}
}

// TestFaultScriptCacheLost empties the script cache with SCRIPT FLUSH, and
// then restarts Redis empty: refills recover at once, with no error,
// because redis.Script.Run falls back to EVAL on NOSCRIPT.
func TestFaultScriptCacheLost(t *testing.T) {
	srv := redistest.Start(t)
	rdb := faultClient(srv, true)
	l := newFaultLimiter(t, rdb, ratelimit.PerHour(10), lease.WithKeyspace(faultKeyspace(t)),
		lease.WithRefillTimeout(time.Second), lease.WithFailurePolicy(ratelimit.FailClosed))
	allow := func(what, key string) {
		t.Helper()
		d, err := l.Allow(t.Context(), key)
		if err != nil || !d.Allowed || d.Source == ratelimit.SourceFallback {
			t.Fatalf("%s: %+v, %v; want admitted from a lease", what, d, err)
		}
	}
	allow("first call", "k1")
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	allow("after SCRIPT FLUSH", "k2")
	srv.Restart()
	allow("after a restart", "k3")
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	allow("after a restart and SCRIPT FLUSH", "k4")
	if s := l.Stats(); s.RefillErrors != 0 || s.Refills < 4 {
		t.Fatalf("stats %+v: want at least 4 refills and no refill error", s)
	}
}

// TestFaultWrongKeyType puts strings at the exact Redis keys of client
// keys (the token bucket the limiter leases from): a refill for each fails
// with an error matching ErrStore that names the problem, ten such
// failures do not open the circuit breaker (Redis answered), and other
// keys are still leased from Redis.
func TestFaultWrongKeyType(t *testing.T) {
	srv := redistest.Start(t)
	rdb := faultClient(srv, true)
	ks := faultKeyspace(t)
	// Redis answered: the error is reported under every policy, and the
	// same key fails the same way again (no hold-off that hides the cause).
	for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailClosed, ratelimit.FailOpen, ratelimit.FailLocal} {
		t.Run("policy="+policy.String(), func(t *testing.T) {
			testWrongKeyType(t, rdb, ks, policy)
		})
	}
}

func testWrongKeyType(t *testing.T, rdb *redis.Client, ks ratelimit.Keyspace, policy ratelimit.FailurePolicy) {
	ctx := t.Context()
	l := newFaultLimiter(t, rdb, ratelimit.PerSecond(10), lease.WithKeyspace(ks),
		lease.WithRefillTimeout(time.Second), lease.WithFailurePolicy(policy))
	for i := range 10 { // twice what opens the breaker
		key := fmt.Sprintf("wrong%d", i%2) // each key twice
		rkey, err := ks.ClientKey(key, "token_bucket")
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, rkey, "not a bucket", 0).Err(); err != nil {
			t.Fatal(err)
		}
		d, err := l.Allow(ctx, key)
		if !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "WRONGTYPE") ||
			errors.Is(err, ratelimit.ErrCircuitOpen) || d.Allowed {
			t.Fatalf("key %s on a string: %+v, %v; want a denial and an error matching ErrStore that says WRONGTYPE", key, d, err)
		}
	}
	if s := l.Stats(); s.Breaker != "closed" || s.RefillErrors != 10 {
		t.Fatalf("stats after 10 WRONGTYPE replies %+v: want 10 refill errors and the breaker closed", s)
	}
	if d, err := l.Allow(ctx, "right"+policy.String()); err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis {
		t.Fatalf("another key after 10 WRONGTYPE replies: %+v, %v; want admitted by a Redis lease", d, err)
	}
}
