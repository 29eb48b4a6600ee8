package algorithms

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// clusterRecovery bounds how long after the cluster is healthy again a
// limiter takes to decide correctly: the client's slot map reload (every
// 200 ms here), the breaker's cool-down (500 ms, +20% jitter) and slack
// for a loaded machine.
const clusterRecovery = 3 * time.Second

// TestCluster runs every algorithm on a Redis Cluster of three masters,
// each with a replica, through a redis.ClusterClient:
//
//   - keys in every master's slots admit exactly the burst, then deny;
//   - while a key is in use, its slot moves to another master (the client
//     gets ASK during the move and MOVED after it): no token is lost or
//     granted twice, and no call fails;
//   - the master of a key crashes and its replica takes over: within
//     clusterRecovery the limiter decides again, from the state the
//     replica had.
//
// go-redis reloads a ClusterClient's slot map on MOVED but not when a node
// stops answering; the client here sets ClusterStateReloadInterval to
// 200 ms so that it finds the promoted replica by itself (see
// internal/redistest TestClusterFailover and docs/operations.md).
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	rdb := c.Client(func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = 200 * time.Millisecond })
	ks := keyspace(t)
	ctx := t.Context()
	const burst = 5
	lim := ratelimit.PerHour(burst) // a token every 12 minutes: no refill during the test
	ls := map[Algorithm]*Limiter{}
	for _, alg := range All {
		ls[alg] = newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(ks), WithAlgorithm(alg), WithTimeout(time.Second))
	}
	// spend calls Allow on key until Redis denies it, at most burst+1
	// times, and returns how many it admitted.
	spend := func(t *testing.T, alg Algorithm, key string) int {
		t.Helper()
		for i := 0; i <= burst; i++ {
			d, err := ls[alg].Allow(ctx, key)
			if err != nil || d.Source != ratelimit.SourceRedis {
				t.Fatalf("%s: key %s, call %d: %+v, %v", alg.Name(), key, i+1, d, err)
			}
			if !d.Allowed {
				return i
			}
		}
		t.Fatalf("%s: key %s admitted more than the burst %d", alg.Name(), key, burst)
		return 0
	}

	t.Run("keys in every slot range", func(t *testing.T) {
		masters := map[*redistest.Server]int{}
		for i := range 12 {
			key := fmt.Sprintf("user%d", i)
			masters[c.MasterOf(t, clientKey(t, ks, key, GCRA))]++
			for _, alg := range All {
				if n := spend(t, alg, key); n != burst {
					t.Errorf("%s: key %s admitted %d, want the burst %d", alg.Name(), key, n, burst)
				}
			}
		}
		if len(masters) != 3 {
			t.Fatalf("12 keys landed on %d masters, want all 3", len(masters))
		}
	})

	t.Run("MOVED while in use", func(t *testing.T) {
		const key = "mover"
		const burst = 400 // spent in about a second, longer than the move
		lim := ratelimit.PerHour(burst)
		slot := c.Slot(t, clientKey(t, ks, key, GCRA)) // every algorithm's key has the tag {c:mover}
		from := c.MasterOfSlot(t, slot)
		var to *redistest.Server
		for _, m := range c.Masters(t) {
			if m != from {
				to = m
				break
			}
		}
		// Clients that reload their slot map only when told (by MOVED or
		// ASK, or every 60 s): one under load during the move, which the
		// first redirect sends to reload, and one idle during the move,
		// which must follow MOVED after it.
		var redirects, idleRedirects redistest.Redirects
		rdb := c.Client(func(o *redis.ClusterOptions) { o.NewClient = redirects.NewClient })
		idle := newLimiter(t, c.Client(func(o *redis.ClusterOptions) { o.NewClient = idleRedirects.NewClient }),
			lim, WithLogger(quietLog), WithKeyspace(ks), WithTimeout(time.Second))
		if d, err := idle.Allow(ctx, "warm"); err != nil || !d.Allowed { // loads the slot map
			t.Fatalf("idle client: first call: %+v, %v", d, err)
		}
		type tally struct{ admitted, errs int }
		tallies := make([]tally, len(All))
		movers := make([]*Limiter, len(All))
		var wg sync.WaitGroup
		done := make(chan struct{})
		for i, alg := range All {
			l := newLimiter(t, rdb, lim, WithLogger(quietLog), WithKeyspace(ks), WithAlgorithm(alg), WithTimeout(time.Second),
				WithFailurePolicy(ratelimit.FailClosed))
			if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
				t.Fatalf("%s: first call: %+v, %v", alg.Name(), d, err)
			}
			tallies[i].admitted = 1
			movers[i] = l
			wg.Go(func() {
				deadline := time.Now().Add(30 * time.Second)
				for n := 0; n < 100_000 && time.Now().Before(deadline); n++ {
					d, err := l.Allow(ctx, key)
					switch {
					case err != nil:
						tallies[i].errs++
					case d.Allowed:
						tallies[i].admitted++
					default:
						select {
						case <-done: // the move is over and Redis denied: all spent
							return
						default:
						}
					}
					time.Sleep(2 * time.Millisecond)
				}
				t.Errorf("%s: the load did not end", alg.Name())
			})
		}
		time.Sleep(50 * time.Millisecond)
		movedBefore, askedBefore := redirects.Moved(), redirects.Asked()
		start := time.Now()
		c.MoveSlot(t, slot, to)
		moved := time.Since(start)
		close(done)
		wg.Wait()
		movedN, askedN := redirects.Moved()-movedBefore, redirects.Asked()-askedBefore
		if movedN+askedN == 0 {
			t.Error("no call was redirected with MOVED or ASK")
		}
		t.Logf("the client under load followed %d MOVED and %d ASK redirects", movedN, askedN)
		// The idle client still sends the key to the old master.
		if d, err := idle.Allow(ctx, key); err != nil || d.Allowed || d.Source != ratelimit.SourceRedis {
			t.Errorf("idle client after the move: %+v, %v; want denied by Redis (the burst is spent)", d, err)
		}
		if n := idleRedirects.Moved(); n == 0 {
			t.Errorf("the idle client followed %d MOVED redirects, want at least 1", n)
		}
		if got := c.MasterOfSlot(t, slot); got != to {
			t.Fatalf("slot %d is on %s after MoveSlot, want %s", slot, got.Addr(), to.Addr())
		}
		for i, alg := range All {
			if tallies[i].admitted != burst {
				t.Errorf("%s: admitted %d across the move (%d errors), want exactly the burst %d",
					alg.Name(), tallies[i].admitted, tallies[i].errs, burst)
			}
			if d, err := movers[i].Allow(ctx, key); err != nil || d.Allowed || d.Source != ratelimit.SourceRedis {
				t.Errorf("%s: after the move: %+v, %v; want denied by Redis", alg.Name(), d, err)
			}
			t.Logf("%s: slot moved in %v under load; %d admitted, %d errors during the move",
				alg.Name(), moved.Round(time.Millisecond), tallies[i].admitted, tallies[i].errs)
		}
	})

	t.Run("failover", func(t *testing.T) {
		const key = "survivor"
		for _, alg := range All {
			for range 2 {
				if d, err := ls[alg].Allow(ctx, key); err != nil || !d.Allowed {
					t.Fatalf("%s: before the failover: %+v, %v", alg.Name(), d, err)
				}
			}
		}
		master := c.MasterOf(t, clientKey(t, ks, key, GCRA))
		// Replication is asynchronous: make sure the replica has the state.
		if n, err := master.Client().Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT = %d, %v; want 1 replica", n, err)
		}
		// Meanwhile a load runs on another key of the same master, which
		// fails while the master is down and opens the breaker.
		busy := ""
		for i := 0; busy == ""; i++ {
			if k := fmt.Sprintf("busy%d", i); c.MasterOf(t, clientKey(t, ks, k, GCRA)) == master {
				busy = k
			}
		}
		bl := newLimiter(t, rdb, ratelimit.PerSecond(1000), WithLogger(quietLog), WithKeyspace(ks), WithTimeout(100*time.Millisecond),
			WithFailurePolicy(ratelimit.FailClosed))
		var load sync.WaitGroup
		stop := make(chan struct{})
		var loadErrs, circuitOpen int
		var lastErr time.Time
		load.Go(func() {
			for n := 0; n < 100_000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := bl.Allow(ctx, busy); err != nil {
					loadErrs++
					lastErr = time.Now()
					if errors.Is(err, ratelimit.ErrCircuitOpen) {
						circuitOpen++
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		c.Failover(t, master)
		healthy := time.Now()
		for _, alg := range All {
			// Until the limiter finds the new master, calls fail; then Redis
			// decides from the replica's state: 3 of 5 tokens are left.
			var errs []error
			for {
				d, err := ls[alg].Allow(ctx, key)
				if err == nil {
					if !d.Allowed || d.Remaining != burst-3 || d.Source != ratelimit.SourceRedis {
						t.Fatalf("%s: first decision after the failover: %+v; want admitted by Redis with %d remaining", alg.Name(), d, burst-3)
					}
					break
				}
				if !errors.Is(err, ratelimit.ErrStore) {
					t.Fatalf("%s: after the failover: %v, want an error matching ErrStore", alg.Name(), err)
				}
				errs = append(errs, err)
				if time.Since(healthy) > clusterRecovery {
					t.Fatalf("%s: still failing %v after the cluster recovered: %v", alg.Name(), clusterRecovery, errs[len(errs)-1])
				}
				time.Sleep(20 * time.Millisecond)
			}
			if n := spend(t, alg, key); n != burst-3 {
				t.Errorf("%s: admitted %d more after the failover, want %d", alg.Name(), n, burst-3)
			}
			t.Logf("%s: failover took %v; correct again %v after the cluster was healthy, after %d failed calls",
				alg.Name(), healthy.Sub(start).Round(time.Millisecond), time.Since(healthy).Round(time.Millisecond), len(errs))
		}
		time.Sleep(time.Until(healthy.Add(2 * time.Second)))
		close(stop)
		load.Wait()
		if loadErrs == 0 {
			t.Error("the load on the failed master saw no error")
		}
		if lastErr.Sub(healthy) > 1500*time.Millisecond {
			t.Errorf("the load still failed %v after the cluster was healthy, want within 1.5 s", lastErr.Sub(healthy))
		}
		t.Logf("load on the failed master: %d errors (%d refused by the open breaker), the last %v after the cluster was healthy",
			loadErrs, circuitOpen, lastErr.Sub(healthy).Round(time.Millisecond))
	})
}
