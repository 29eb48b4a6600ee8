package limitertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/faulttest"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

const (
	// faultTimeout is the limiters' Redis timeout under load.
	faultTimeout = 50 * time.Millisecond
	// faultSlack is what a call may take beyond its wait: scheduling on a
	// loaded machine, not Redis. The stalls last 2 s, so a call that Redis
	// held would still stand out.
	faultSlack = time.Second
	// faultRecovery bounds how long after Redis answers again the failure
	// policy may still decide: the breaker's cool-down (250 ms, +20%
	// jitter), a probe, and for a leasing limiter a degraded key's retry
	// (100 ms) and a refill.
	faultRecovery = time.Second
)

var policies = []ratelimit.FailurePolicy{ratelimit.FailClosed, ratelimit.FailOpen, ratelimit.FailLocal}

// recoveredAt returns when normal limiting resumed after since: the start
// of the first call at or after since that was admitted normally with no
// error. Sporadic calls slower than the timeout on a loaded machine may
// still fall back after that, as they did before the fault began (at
// fault), so it then checks that of the calls from 200 ms later on, the
// share decided normally is at least 80% of the share before the fault.
// It fails t if no call resumed.
func (s Subject) recoveredAt(t *testing.T, calls []faulttest.Call, fault, since time.Time) time.Time {
	t.Helper()
	var normalBefore, before int
	for _, c := range calls {
		if c.Start.Before(fault) {
			before++
			if c.Err == nil && s.normal(c.D) {
				normalBefore++
			}
		}
	}
	if before == 0 || normalBefore == 0 {
		t.Fatalf("no call before the fault was decided with %s (%d calls)", s.normalSource(), before)
	}
	var at time.Time
	for _, c := range calls {
		if !c.Start.Before(since) && c.Err == nil && c.D.Allowed && s.normal(c.D) {
			at = c.Start
			break
		}
	}
	if at.IsZero() {
		t.Fatalf("no call after %v was admitted with %s", since.Format("15:04:05.000"), s.normalSource())
	}
	var normal, later int
	for _, c := range calls {
		if c.Start.After(at.Add(200 * time.Millisecond)) {
			later++
			if c.Err == nil && s.normal(c.D) {
				normal++
			}
		}
	}
	// normal/later >= 0.8 × normalBefore/before, in integers.
	if later == 0 || 10*normal*before < 8*later*normalBefore {
		t.Fatalf("after limiting resumed: %d of %d calls decided normally, want at least 80%% of the share before the fault (%d of %d)",
			normal, later, normalBefore, before)
	}
	return at
}

// killRestart kills Redis while goroutines call a limiter and starts it
// again, empty, on the same port: no call outlives the limiter's wait,
// the failure policy decides while Redis is down (once leased tokens are
// spent, for a leasing limiter), and Redis decides again within
// faultRecovery of the restart.
func (s Subject) killRestart(t *testing.T) {
	for _, p := range policies {
		t.Run("policy="+p.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			lim := ratelimit.PerSecond(200)
			const instances = 4
			c := Config{Variant: s.Variants[0], Keyspace: Keyspace(t), Timeout: faultTimeout, Policy: p, Instances: instances}
			l := s.New(t, Client(srv, true), lim, c)
			if d, err := l.Allow(t.Context(), "warm"); err != nil || !d.Allowed || !s.normal(d) {
				t.Fatalf("warm-up: %+v, %v; want admitted with %s", d, err, s.normalSource())
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

			faulttest.CheckBounded(t, "all calls", calls, s.maxWait(c)+faultSlack)
			dc := faulttest.Between(calls, down, restart)
			if len(dc) < 10 { // the load ran; a loaded machine makes fewer calls
				t.Fatalf("only %d calls while Redis was down", len(dc))
			}
			var open int
			for _, c := range dc {
				switch {
				case c.Fallback():
				case s.Leases && c.D.Source == ratelimit.SourceLocal && c.Err == nil:
				default:
					t.Fatalf("while Redis was down: %+v, %v; want Source fallback (or local, from leased tokens or a remembered denial)", c.D, c.Err)
				}
				if errors.Is(c.Err, ratelimit.ErrCircuitOpen) {
					open++
				}
			}
			n := faulttest.CheckPolicy(t, p, calls, s.FailLocalShare(lim, instances))
			if n == 0 {
				t.Fatal("the failure policy decided nothing while Redis was down")
			}
			at := s.recoveredAt(t, calls, down, up)
			if d := at.Sub(up); d > faultRecovery {
				t.Errorf("limiting resumed %v after the restart, want within %v", d, faultRecovery)
			}
			s.check(t, Outcome{Scenario: KillRestart, Limiter: l, Config: c, Limit: lim, Calls: calls, Outage: dc})
			p50, p99, maxd := faulttest.Latencies(dc)
			t.Logf("policy %v: %d calls while Redis was down (%d decided by the policy in all, %d refused by the open breaker): latency p50 %v, p99 %v, max %v; restart took %v; Redis decided again %v after it",
				p, len(dc), n, open, p50, p99, maxd, up.Sub(restart).Round(time.Millisecond), at.Sub(up).Round(time.Millisecond))
		})
	}
}

// stall stalls Redis, first with CLIENT PAUSE and then with DEBUG SLEEP
// from another client, while goroutines call limiters of each policy
// through a client that honours context deadlines and one that does not
// (whose calls internal/rcall bounds from its own goroutine). Every call
// returns within the limiter's wait plus slack, the policy decides what
// Redis could not answer in time, and Redis decides again soon after the
// stall.
func (s Subject) stall(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
	lim := ratelimit.PerSecond(1000)
	// Two goroutines, a call each every 2 ms, on two keys: each key is
	// asked for at most half the limit, so FailLocal admits at most that
	// whatever share a limiter uses.
	share := lim.Share(2)
	type limiter struct {
		name string
		c    Config
		l    Limiter
	}
	var ls []limiter
	for _, cte := range []bool{true, false} {
		rdb := Client(srv, cte)
		for _, p := range policies {
			name := fmt.Sprintf("ContextTimeoutEnabled=%v/policy=%v", cte, p)
			// Each limiter has keys of its own: they share no bucket.
			ks, err := ratelimit.NewKeyspace(redistest.Prefix(t) + fmt.Sprintf("%v.%v:", cte, p))
			if err != nil {
				t.Fatal(err)
			}
			c := Config{Variant: s.Variants[0], Keyspace: ks, Timeout: faultTimeout, Policy: p, Instances: 2}
			ls = append(ls, limiter{name, c, s.New(t, rdb, lim, c)})
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
				faulttest.CheckBounded(t, x.name, calls, s.maxWait(x.c)+faultSlack)
				sc := faulttest.Between(calls, stalled.Add(20*time.Millisecond), over.Add(-150*time.Millisecond))
				var timedOut int
				for _, c := range sc {
					// A leasing limiter serves what it holds.
					if !s.Leases && !c.Fallback() {
						t.Errorf("%s: during the stall: %+v, %v; want Source fallback", x.name, c.D, c.Err)
						break
					}
					if errors.Is(c.Err, context.DeadlineExceeded) {
						timedOut++
					}
				}
				n := faulttest.CheckPolicy(t, x.c.Policy, calls, share)
				if n == 0 {
					t.Errorf("%s: the failure policy decided nothing during the stall", x.name)
				}
				at := s.recoveredAt(t, calls, stalled, over)
				if d := at.Sub(over); d > faultRecovery {
					t.Errorf("%s: limiting resumed %v after the stall, want within %v", x.name, d, faultRecovery)
				}
				s.check(t, Outcome{Scenario: Stall, Limiter: x.l, Config: x.c, Limit: lim, Calls: calls, Outage: sc})
				p50, p99, maxd := faulttest.Latencies(sc)
				t.Logf("%s: %d calls during the stall (%d decided by the policy in all, %d reported a deadline): latency p50 %v, p99 %v, max %v; Redis decided again %v after it",
					x.name, len(sc), n, timedOut, p50, p99, maxd, at.Sub(over).Round(time.Millisecond))
			}
		})
	}
}

// scriptFlush empties the script cache with SCRIPT FLUSH, and then
// restarts Redis empty: every variant recovers at once, with no error,
// because redis.Script.Run falls back to EVAL on NOSCRIPT. A limiter that
// asks Redis on every call is asked about one key throughout, and its
// Remaining shows that the key survives a flush of the scripts but not a
// restart; a leasing limiter is asked about a new key at each step, so
// that each step takes a refill.
func (s Subject) scriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	rdb := Client(srv, true)
	ks := Keyspace(t)
	lim := ratelimit.PerHour(10)
	cs := make([]Config, len(s.Variants))
	ls := make([]Limiter, len(s.Variants))
	for i, v := range s.Variants {
		cs[i] = Config{Variant: v, Keyspace: ks, Timeout: time.Second, Policy: ratelimit.FailClosed}
		ls[i] = s.New(t, rdb, lim, cs[i])
	}
	step := 0
	allow := func(what string, wantRemaining int) {
		t.Helper()
		step++
		key := "k"
		if s.Leases {
			key = fmt.Sprintf("k%d", step)
		}
		for i, v := range s.Variants {
			d, err := ls[i].Allow(t.Context(), key)
			if err != nil || !d.Allowed || !s.normal(d) || !s.Leases && d.Remaining != wantRemaining {
				t.Fatalf("%s: %s: %+v, %v; want admitted with %s and, unless leased, %d remaining",
					what, v, d, err, s.normalSource(), wantRemaining)
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
	for i, l := range ls {
		s.check(t, Outcome{Scenario: ScriptFlush, Limiter: l, Config: cs[i], Limit: lim})
	}
}

// wrongKeyCalls is how many calls WrongKeyType makes on strings: four
// times what opens a breaker.
const wrongKeyCalls = 20

// wrongKeyType puts strings at the exact Redis keys of two client keys:
// every call on them fails with an error matching ErrStore that names the
// problem, under every policy (Redis answered), and the same key fails the
// same way again (no hold-off hides the cause); wrongKeyCalls such calls
// do not open the circuit breaker, and another key is still decided by
// Redis.
func (s Subject) wrongKeyType(t *testing.T) {
	srv := redistest.Start(t)
	rdb := Client(srv, true)
	ctx := t.Context()
	for _, v := range s.Variants {
		for _, p := range policies {
			t.Run("alg="+v+"/policy="+p.String(), func(t *testing.T) {
				c := Config{Variant: v, Keyspace: Keyspace(t), Timeout: time.Second, Policy: p}
				l := s.New(t, rdb, ratelimit.PerSecond(10), c)
				for i := range wrongKeyCalls {
					key := fmt.Sprintf("wrong%d", i%2) // each key in turn
					rkey, err := c.Keyspace.ClientKey(key, v)
					if err != nil {
						t.Fatal(err)
					}
					if err := rdb.Set(ctx, rkey, "not a bucket", 0).Err(); err != nil {
						t.Fatal(err)
					}
					d, err := l.Allow(ctx, key)
					if !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), "WRONGTYPE") ||
						errors.Is(err, ratelimit.ErrCircuitOpen) || d.Allowed {
						t.Fatalf("call %d, key %s on a string: %+v, %v; want a denial and an error matching ErrStore that says WRONGTYPE", i+1, key, d, err)
					}
				}
				if d, err := l.Allow(ctx, "right"); err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis {
					t.Fatalf("another key after %d WRONGTYPE replies: %+v, %v; want admitted by Redis (the breaker must stay closed)", wrongKeyCalls, d, err)
				}
				s.check(t, Outcome{Scenario: WrongKeyType, Limiter: l, Config: c, Limit: ratelimit.PerSecond(10), Errors: wrongKeyCalls})
			})
		}
	}
}
