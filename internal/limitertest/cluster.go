package limitertest

import (
	"context"
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
// 200 ms here), the breaker's cool-down (500 ms, +20% jitter), a leasing
// limiter's hold on a failed key (100 ms) and slack for a loaded machine.
const clusterRecovery = 3 * time.Second

// cluster runs every variant on a Redis Cluster of three masters, each
// with a replica, through a redis.ClusterClient:
//
//   - keys in every master's slots admit exactly the burst, then deny;
//   - while a key is in use, its slot moves to another master (the client
//     gets ASK during the move and MOVED after it): no token is lost or
//     granted twice;
//   - the master of a key crashes and its replica takes over: within
//     clusterRecovery the limiter decides again, from the state the
//     replica had.
//
// go-redis reloads a ClusterClient's slot map on MOVED but not when a node
// stops answering; the client here sets ClusterStateReloadInterval to
// 200 ms so that it finds the promoted replica by itself (see
// internal/redistest TestClusterFailover and docs/operations.md).
func (s Subject) cluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	rdb := c.Client(func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = 200 * time.Millisecond })
	ks := Keyspace(t)
	ctx := t.Context()
	config := func(v string) Config {
		return Config{Variant: v, Keyspace: ks, Timeout: time.Second, Policy: ratelimit.FailClosed, Counted: true}
	}
	// Every variant's key of a client key has the same hash tag, so the
	// first variant's Redis key tells the slot and the master of all.
	rkey := func(t *testing.T, key string) string {
		t.Helper()
		k, err := ks.ClientKey(key, s.Variants[0])
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	const burst = 20
	lim := ratelimit.PerHour(burst) // a token every 3 minutes: no refill during the test
	// Limiters that know the cluster from before the failover.
	known := make([]Limiter, len(s.Variants))
	for i, v := range s.Variants {
		known[i] = s.New(t, rdb, lim, config(v))
	}
	// spend calls Allow on key until it is denied, at most max+1 times,
	// and returns how many it admitted.
	spend := func(t *testing.T, l Limiter, v, key string, max int) int {
		t.Helper()
		for i := 0; i <= max; i++ {
			d, err := l.Allow(ctx, key)
			if err != nil || !s.normal(d) {
				t.Fatalf("%s: key %s, call %d: %+v, %v; want %s", v, key, i+1, d, err, s.normalSource())
			}
			if !d.Allowed {
				return i
			}
		}
		t.Fatalf("%s: key %s admitted more than %d", v, key, max)
		return 0
	}

	t.Run("keys in every slot range", func(t *testing.T) {
		masters := map[*redistest.Server]int{}
		admitted := make([]int, len(s.Variants))
		for i := range 12 {
			key := fmt.Sprintf("user%d", i)
			masters[c.MasterOf(t, rkey(t, key))]++
			for j, v := range s.Variants {
				n := spend(t, known[j], v, key, burst)
				if n != burst {
					t.Errorf("%s: key %s admitted %d, want the burst %d", v, key, n, burst)
				}
				admitted[j] += n
			}
		}
		if len(masters) != 3 {
			t.Fatalf("12 keys landed on %d masters, want all 3", len(masters))
		}
		for j, v := range s.Variants {
			s.check(t, Outcome{Scenario: ClusterSlots, Limiter: known[j], Config: config(v), Limit: lim, Admitted: admitted[j]})
		}
	})

	t.Run("MOVED while in use", func(t *testing.T) { s.clusterMove(t, c, ks, config) })

	t.Run("failover", func(t *testing.T) {
		const key = "survivor"
		// Spend half of the burst, and close the limiter if it can give
		// back what it holds, so that Redis has the whole state.
		for _, v := range s.Variants {
			l := s.New(t, rdb, lim, config(v))
			for range burst / 2 {
				if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
					t.Fatalf("%s: before the failover: %+v, %v", v, d, err)
				}
			}
			if cl, ok := l.(closer); ok {
				if err := cl.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		master := c.MasterOf(t, rkey(t, key))
		// Replication is asynchronous: make sure the replica has the state
		// (WAIT returns as soon as it has; a loaded machine may need a few
		// seconds, asked for within the client's read timeout).
		if n, err := waitReplica(ctx, master.Client()); err != nil || n < 1 {
			t.Fatalf("WAIT = %d, %v; want 1 replica", n, err)
		}
		// Meanwhile a load runs on another key of the same master, which
		// fails while the master is down and opens the breaker.
		busy := ""
		for i := 0; busy == ""; i++ {
			if k := fmt.Sprintf("busy%d", i); c.MasterOf(t, rkey(t, k)) == master {
				busy = k
			}
		}
		bl := s.New(t, rdb, ratelimit.PerSecond(1000),
			Config{Variant: s.Variants[0], Keyspace: ks, Timeout: 100 * time.Millisecond, Policy: ratelimit.FailClosed})
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
		for i, v := range s.Variants {
			// A limiter that knew the old master: until it finds the new
			// one, calls fail; then Redis decides from the replica's state,
			// half of the burst left.
			var failed []error
			for {
				d, err := known[i].Allow(ctx, key)
				if err == nil {
					if !d.Allowed || !s.normal(d) || !s.Leases && d.Remaining != burst/2-1 {
						t.Fatalf("%s: first decision after the failover: %+v; want admitted with %s and, unless leased, %d remaining",
							v, d, s.normalSource(), burst/2-1)
					}
					break
				}
				if !errors.Is(err, ratelimit.ErrStore) {
					t.Fatalf("%s: after the failover: %v, want an error matching ErrStore", v, err)
				}
				failed = append(failed, err)
				if time.Since(healthy) > clusterRecovery {
					t.Fatalf("%s: still failing %v after the cluster recovered: %v", v, clusterRecovery, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			recovered := time.Since(healthy)
			if n := 1 + spend(t, known[i], v, key, burst); n != burst/2 {
				t.Errorf("%s: admitted %d after the failover, want the %d the replica had", v, n, burst/2)
			}
			s.check(t, Outcome{Scenario: ClusterFailover, Limiter: known[i], Config: config(v), Limit: lim})
			t.Logf("%s: failover took %v; correct again %v after the cluster was healthy, after %d failed calls",
				v, healthy.Sub(start).Round(time.Millisecond), recovered.Round(time.Millisecond), len(failed))
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

// clusterMove moves the slot of a key in use by every variant to another
// master. Its clients reload their slot map only when told (by MOVED or
// ASK, or every 60 s): one under load during the move, which the first
// redirect sends to reload, and one idle during the move, which must
// follow MOVED after it. Every variant admits exactly the burst across
// the move.
func (s Subject) clusterMove(t *testing.T, c *redistest.Cluster, ks ratelimit.Keyspace, config func(string) Config) {
	ctx := t.Context()
	const key = "mover"
	const burst = 600 // spent in about a second or more, longer than the move
	lim := ratelimit.PerHour(burst)
	rkey, err := ks.ClientKey(key, s.Variants[0])
	if err != nil {
		t.Fatal(err)
	}
	slot := c.Slot(t, rkey)
	from := c.MasterOfSlot(t, slot)
	var to *redistest.Server
	for _, m := range c.Masters(t) {
		if m != from {
			to = m
			break
		}
	}
	var redirects, idleRedirects redistest.Redirects
	rdb := c.Client(func(o *redis.ClusterOptions) { o.NewClient = redirects.NewClient })
	idle := s.New(t, c.Client(func(o *redis.ClusterOptions) { o.NewClient = idleRedirects.NewClient }), lim, config(s.Variants[0]))
	if d, err := idle.Allow(ctx, "warm"); err != nil || !d.Allowed { // loads the slot map
		t.Fatalf("idle client: first call: %+v, %v", d, err)
	}
	type tally struct{ admitted, errs int }
	tallies := make([]tally, len(s.Variants))
	movers := make([]Limiter, len(s.Variants))
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i, v := range s.Variants {
		l := s.New(t, rdb, lim, config(v))
		if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
			t.Fatalf("%s: first call: %+v, %v", v, d, err)
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
					case <-done: // the move is over and the key denied: all spent
						return
					default:
					}
				}
				time.Sleep(time.Millisecond)
			}
			t.Errorf("%s: the load did not end", v)
		})
	}
	time.Sleep(50 * time.Millisecond)
	movedBefore, askedBefore := redirects.Moved(), redirects.Asked()
	start := time.Now()
	c.MoveSlot(t, slot, to)
	took := time.Since(start)
	close(done)
	wg.Wait()
	if got := c.MasterOfSlot(t, slot); got != to {
		t.Fatalf("slot %d is on %s after MoveSlot, want %s", slot, got.Addr(), to.Addr())
	}
	movedN, askedN := redirects.Moved()-movedBefore, redirects.Asked()-askedBefore
	if movedN+askedN == 0 {
		t.Error("no call was redirected with MOVED or ASK")
	}
	t.Logf("slot moved in %v under load; the client under load followed %d MOVED and %d ASK redirects",
		took.Round(time.Millisecond), movedN, askedN)
	// The idle client still sends the key to the old master.
	if d, err := idle.Allow(ctx, key); err != nil || d.Allowed || !s.normal(d) {
		t.Errorf("idle client after the move: %+v, %v; want denied with %s (the burst is spent)", d, err, s.normalSource())
	}
	if n := idleRedirects.Moved(); n == 0 {
		t.Errorf("the idle client followed %d MOVED redirects, want at least 1", n)
	}
	for i, v := range s.Variants {
		if tallies[i].admitted != burst {
			t.Errorf("%s: admitted %d across the move (%d errors), want exactly the burst %d",
				v, tallies[i].admitted, tallies[i].errs, burst)
		}
		if d, err := movers[i].Allow(ctx, key); err != nil || d.Allowed || !s.normal(d) {
			t.Errorf("%s: after the move: %+v, %v; want denied with %s", v, d, err, s.normalSource())
		}
		s.check(t, Outcome{Scenario: ClusterMove, Limiter: movers[i], Config: config(v), Limit: lim,
			Admitted: tallies[i].admitted, Errors: tallies[i].errs})
		t.Logf("%s: %d admitted, %d errors during the move", v, tallies[i].admitted, tallies[i].errs)
	}
}

// waitReplica asks the master behind rdb, up to ten times a second each,
// until one replica has every write made so far, and returns WAIT's last
// answer.
func waitReplica(ctx context.Context, rdb *redis.Client) (n int, err error) {
	for range 10 {
		if n, err = rdb.Do(ctx, "WAIT", 1, 1000).Int(); err == nil && n >= 1 {
			return n, nil
		}
	}
	return n, err
}
