package algorithms

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
)

// The fault tests run a Limiter on a real redis-server and break the
// server while goroutines keep calling: kill and restart it, stall it,
// empty its script cache, or put a value of the wrong type at a limiter's
// key. They check that every call returns within its deadline, that the
// failure policy decides while Redis cannot answer, and that limiting goes
// back to Redis soon after it can.
//
// Time bounds here are correctness bounds, not performance targets: they
// hold on a loaded two-core machine under -race, and the measured figures
// are logged.

const (
	// faultTimeout is the limiter's own timeout in the fault tests.
	faultTimeout = 50 * time.Millisecond
	// faultSlack is what a call may take beyond its timeout: scheduling on
	// a loaded machine, not Redis. The stalls last 2 s, so a call that
	// Redis held would still stand out.
	faultSlack = time.Second
	// faultRecovery bounds how long after Redis answers again the failure
	// policy may still decide: the breaker's cool-down (250 ms, +20%
	// jitter) plus a probe.
	faultRecovery = time.Second
)

// quietLog drops the breaker's log records: these tests open it on purpose.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var faultPolicies = []ratelimit.FailurePolicy{ratelimit.FailClosed, ratelimit.FailOpen, ratelimit.FailLocal}

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

// recoveredAt returns when normal limiting resumed after since: the start
// of the first call at or after since that Redis admitted (Source want)
// with no error. Sporadic calls slower than the timeout on a loaded
// machine may still fall back after that, so it then checks that at least
// 80% of the calls from 200 ms later on were decided normally. It fails t
// if no call resumed.
func recoveredAt(t *testing.T, calls []faulttest.Call, since time.Time, want ratelimit.Source) time.Time {
	t.Helper()
	var at time.Time
	for _, c := range calls {
		if !c.Start.Before(since) && c.Err == nil && c.D.Allowed && c.D.Source == want {
			at = c.Start
			break
		}
	}
	if at.IsZero() {
		t.Fatalf("no call after %v was admitted with Source %v", since.Format("15:04:05.000"), want)
	}
	var normal, later int
	for _, c := range calls {
		if c.Start.After(at.Add(200 * time.Millisecond)) {
			later++
			if c.Err == nil && c.D.Source == want {
				normal++
			}
		}
	}
	if later == 0 || normal < later*8/10 {
		t.Fatalf("after limiting resumed: %d of %d calls decided normally, want at least 80%%", normal, later)
	}
	return at
}

// TestFaultKillRestart kills Redis while goroutines call the Limiter and
// starts it again, empty, on the same port: no call outlives its timeout,
// the failure policy decides while Redis is down, and Redis decides again
// within faultRecovery of the restart.
func TestFaultKillRestart(t *testing.T) {
	for _, p := range faultPolicies {
		t.Run("policy="+p.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			rdb := faultClient(srv, true)
			lim := ratelimit.PerSecond(200)
			const instances = 4
			l := newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(keyspace(t)), WithTimeout(faultTimeout),
				WithFailurePolicy(p), WithInstances(instances))
			if d, err := l.Allow(t.Context(), "warm"); err != nil || d.Source != ratelimit.SourceRedis {
				t.Fatalf("warm-up: %+v, %v", d, err)
			}

			// Four goroutines at about 1,000 calls/s each, on four keys:
			// far above the limit, so that FailLocal's bound is tested.
			run := faulttest.StartLoad(4, []string{"a", "b", "c", "d"}, time.Millisecond, l.Allow)
			time.Sleep(200 * time.Millisecond)
			srv.Kill()
			down := time.Now()
			time.Sleep(500 * time.Millisecond)
			restart := time.Now()
			srv.Restart()
			up := time.Now()
			time.Sleep(faultRecovery + 300*time.Millisecond)
			calls := run.Finish()

			faulttest.CheckBounded(t, "all calls", calls, faultTimeout+faultSlack)
			dc := faulttest.Between(calls, down, restart)
			if len(dc) < 10 { // the load ran; a loaded machine makes fewer calls
				t.Fatalf("only %d calls while Redis was down", len(dc))
			}
			for _, c := range dc {
				if !c.Fallback() {
					t.Fatalf("while Redis was down: %+v, %v; want Source fallback", c.D, c.Err)
				}
			}
			n := faulttest.CheckPolicy(t, p, calls, lim.Share(instances))
			var open int
			for _, c := range dc {
				if errors.Is(c.Err, ratelimit.ErrCircuitOpen) {
					open++
				}
			}
			at := recoveredAt(t, calls, up, ratelimit.SourceRedis)
			if d := at.Sub(up); d > faultRecovery {
				t.Errorf("limiting resumed %v after the restart, want within %v", d, faultRecovery)
			}
			p50, p99, maxd := faulttest.Latencies(dc)
			t.Logf("policy %v: %d calls while Redis was down (%d decided by the policy in all, %d refused by the open breaker): latency p50 %v, p99 %v, max %v; restart took %v; Redis decided again %v after it",
				p, len(dc), n, open, p50, p99, maxd, up.Sub(restart).Round(time.Millisecond), at.Sub(up).Round(time.Millisecond))
		})
	}
}

// TestFaultSlowRedis stalls Redis, first with CLIENT PAUSE and then with
// DEBUG SLEEP from another client, while goroutines call Limiters of each
// policy through a client that honours context deadlines and one that
// does not (whose calls internal/rcall bounds from its own goroutine).
// Every call returns within the limiter's timeout plus slack, the policy
// decides the calls that Redis could not answer in time, and Redis decides
// again soon after the stall.
func TestFaultSlowRedis(t *testing.T) {
	srv := redistest.Start(t)
	ks := keyspace(t)
	admin := srv.Client(func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
	lim := ratelimit.PerSecond(1000)
	type limiter struct {
		name   string
		policy ratelimit.FailurePolicy
		l      *Limiter
	}
	var ls []limiter
	for _, cte := range []bool{true, false} {
		rdb := faultClient(srv, cte)
		for _, p := range faultPolicies {
			l := newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(ks), WithTimeout(faultTimeout), WithFailurePolicy(p), WithInstances(2))
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
				faulttest.CheckBounded(t, x.name, calls, faultTimeout+faultSlack)
				sc := faulttest.Between(calls, stalled.Add(20*time.Millisecond), over.Add(-150*time.Millisecond))
				var timedOut int
				for _, c := range sc {
					if !c.Fallback() {
						t.Errorf("%s: during the stall: %+v, %v; want Source fallback", x.name, c.D, c.Err)
						break
					}
					if errors.Is(c.Err, context.DeadlineExceeded) {
						timedOut++
					}
				}
				faulttest.CheckPolicy(t, x.policy, calls, lim.Share(2))
				at := recoveredAt(t, calls, over, ratelimit.SourceRedis)
				if d := at.Sub(over); d > faultRecovery {
					t.Errorf("%s: limiting resumed %v after the stall, want within %v", x.name, d, faultRecovery)
				}
				p50, p99, maxd := faulttest.Latencies(sc)
				t.Logf("%s: %d calls during the stall (%d reported a deadline): latency p50 %v, p99 %v, max %v; Redis decided again %v after it",
					x.name, len(sc), timedOut, p50, p99, maxd, at.Sub(over).Round(time.Millisecond))
			}
		})
	}
}

// TestFaultScriptCacheLost empties the script cache with SCRIPT FLUSH, and
// then restarts Redis empty: every algorithm recovers at once, with no
// error, because redis.Script.Run falls back to EVAL on NOSCRIPT.
func TestFaultScriptCacheLost(t *testing.T) {
	srv := redistest.Start(t)
	rdb := faultClient(srv, true)
	ks := keyspace(t)
	lim := ratelimit.PerHour(10)
	ls := map[Algorithm]*Limiter{}
	for _, alg := range All {
		ls[alg] = newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(ks), WithAlgorithm(alg), WithTimeout(time.Second))
	}
	allow := func(what string, wantRemaining int) {
		t.Helper()
		for _, alg := range All {
			d, err := ls[alg].Allow(t.Context(), "k")
			if err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis || d.Remaining != wantRemaining {
				t.Fatalf("%s: %s: %+v, %v; want admitted by Redis with %d remaining", what, alg.Name(), d, err, wantRemaining)
			}
		}
	}
	allow("first call", 9)
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	allow("after SCRIPT FLUSH", 8) // the keys survive a flush of the scripts
	srv.Restart()
	allow("after a restart", 9) // a restarted server is empty
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	allow("after a restart and SCRIPT FLUSH", 8)
}

// TestFaultWrongKeyType puts a string at the exact Redis key of a client
// key: each call on it fails with an error matching ErrStore that names
// the problem, many such calls do not open the circuit breaker (Redis
// answered), and other keys are still decided by Redis.
func TestFaultWrongKeyType(t *testing.T) {
	srv := redistest.Start(t)
	rdb := faultClient(srv, true)
	ks := keyspace(t)
	ctx := t.Context()
	for _, alg := range All {
		for _, policy := range []ratelimit.FailurePolicy{ratelimit.FailClosed, ratelimit.FailOpen, ratelimit.FailLocal} {
			t.Run("alg="+alg.Name()+"/policy="+policy.String(), func(t *testing.T) {
				// Redis answered: the error is reported under every policy.
				l := newLimiter(t, rdb, ratelimit.PerSecond(10), WithLogger(quietLog), WithKeyspace(ks), WithAlgorithm(alg),
					WithTimeout(time.Second), WithFailurePolicy(policy))
				rkey, err := ks.ClientKey("wrong", alg.Name())
				if err != nil {
					t.Fatal(err)
				}
				if err := rdb.Set(ctx, rkey, "not a bucket", 0).Err(); err != nil {
					t.Fatal(err)
				}
				for i := range 20 { // four times what opens the breaker
					d, err := l.Allow(ctx, "wrong")
					if !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "WRONGTYPE") ||
						errors.Is(err, ratelimit.ErrCircuitOpen) || d.Allowed {
						t.Fatalf("call %d on a string: %+v, %v; want a denial and an error matching ErrStore that says WRONGTYPE", i+1, d, err)
					}
				}
				if d, err := l.Allow(ctx, "right"); err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis {
					t.Fatalf("another key after 20 WRONGTYPE replies: %+v, %v; want admitted by Redis (the breaker must stay closed)", d, err)
				}
			})
		}
	}
}
