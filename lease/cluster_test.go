package lease_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// clusterRecovery bounds how long after the cluster is healthy again a
// leasing limiter takes to lease again: the client's slot map reload
// (every 200 ms here), the breaker's cool-down (500 ms, +20% jitter), a
// key's fallback hold (100 ms) and slack for a loaded machine.
const clusterRecovery = 3 * time.Second

// TestCluster runs the leasing limiter on a Redis Cluster of three
// masters, each with a replica, through a redis.ClusterClient:
//
//   - keys in every master's slots admit exactly the burst, then deny;
//   - while a key is in use, its slot moves to another master (the client
//     gets ASK during the move and MOVED after it): no token is lost or
//     granted twice, and no call fails;
//   - the master of a key crashes and its replica takes over: within
//     clusterRecovery the limiter leases again, from the state the replica
//     had.
//
// go-redis reloads a ClusterClient's slot map on MOVED but not when a node
// stops answering; the client here sets ClusterStateReloadInterval to
// 200 ms so that it finds the promoted replica by itself (see
// internal/redistest TestClusterFailover and docs/operations.md).
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	rdb := c.Client(func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = 200 * time.Millisecond })
	ks := faultKeyspace(t)
	ctx := t.Context()
	rkey := func(key string) string {
		t.Helper()
		k, err := ks.ClientKey(key, "token_bucket")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// Leases of up to a quarter of the burst; tokens never expire during
	// the test, so every token Redis grants is served here.
	opts := []lease.Option{lease.WithKeyspace(ks), lease.WithAccuracyBudget(0.25), lease.WithLeaseTTL(time.Minute),
		lease.WithRefillTimeout(time.Second), lease.WithFailurePolicy(ratelimit.FailClosed)}
	const burst = 20
	l := newFaultLimiter(t, rdb, ratelimit.PerHour(burst), opts...) // no refill during the test
	// spend calls Allow on key until it is denied, at most burst+1 times,
	// and returns how many it admitted.
	spend := func(t *testing.T, l *lease.Limiter, key string, max int) int {
		t.Helper()
		for i := 0; i <= max; i++ {
			d, err := l.Allow(ctx, key)
			if err != nil || d.Source == ratelimit.SourceFallback {
				t.Fatalf("key %s, call %d: %+v, %v", key, i+1, d, err)
			}
			if !d.Allowed {
				return i
			}
		}
		t.Fatalf("key %s admitted more than %d", key, max)
		return 0
	}

	t.Run("keys in every slot range", func(t *testing.T) {
		masters := map[*redistest.Server]int{}
		for i := range 12 {
			key := fmt.Sprintf("user%d", i)
			masters[c.MasterOf(t, rkey(key))]++
			if n := spend(t, l, key, burst); n != burst {
				t.Errorf("key %s admitted %d, want the burst %d", key, n, burst)
			}
		}
		if len(masters) != 3 {
			t.Fatalf("12 keys landed on %d masters, want all 3", len(masters))
		}
		if s := l.Stats(); s.RefillErrors != 0 || s.TokensServed != 12*burst {
			t.Fatalf("stats %+v: want %d tokens served and no refill error", s, 12*burst)
		}
	})

	t.Run("MOVED while in use", func(t *testing.T) {
		const key = "mover"
		const burst = 600 // spent in about a second, longer than the move
		// Clients that reload their slot map only when told (by MOVED or
		// ASK, or every 60 s): one under load during the move, which the
		// first redirect sends to reload, and one idle during the move,
		// which must follow MOVED after it.
		var redirects, idleRedirects redistest.Redirects
		rdb := c.Client(func(o *redis.ClusterOptions) { o.NewClient = redirects.NewClient })
		ml := newFaultLimiter(t, rdb, ratelimit.PerHour(burst), opts...)
		idle := newFaultLimiter(t, c.Client(func(o *redis.ClusterOptions) { o.NewClient = idleRedirects.NewClient }),
			ratelimit.PerHour(burst), opts...)
		if d, err := idle.Allow(ctx, "warm"); err != nil || !d.Allowed { // loads the slot map
			t.Fatalf("idle client: first call: %+v, %v", d, err)
		}
		slot := c.Slot(t, rkey(key))
		from := c.MasterOfSlot(t, slot)
		var to *redistest.Server
		for _, m := range c.Masters(t) {
			if m != from {
				to = m
				break
			}
		}
		var admitted, errs int
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for n := 0; n < 100_000 && time.Now().Before(deadline); n++ {
				d, err := ml.Allow(ctx, key)
				switch {
				case err != nil:
					errs++
				case d.Allowed:
					admitted++
				default:
					select {
					case <-done: // the move is over and Redis denied: all spent
						return
					default:
					}
				}
				time.Sleep(time.Millisecond)
			}
			t.Error("the load did not end")
		})
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
			t.Error("no refill was redirected with MOVED or ASK")
		}
		// The idle client still sends the key to the old master.
		if d, err := idle.Allow(ctx, key); err != nil || d.Allowed || d.Source == ratelimit.SourceFallback {
			t.Errorf("idle client after the move: %+v, %v; want denied (the burst is spent)", d, err)
		}
		if n := idleRedirects.Moved(); n == 0 {
			t.Errorf("the idle client followed %d MOVED redirects, want at least 1", n)
		}
		if admitted != burst || errs != 0 {
			t.Errorf("admitted %d across the move with %d errors, want exactly the burst %d and no error", admitted, errs, burst)
		}
		s := ml.Stats()
		t.Logf("slot moved in %v under load; %d admitted, %d errors; %d refills; the client under load followed %d MOVED and %d ASK redirects",
			took.Round(time.Millisecond), admitted, errs, s.Refills, movedN, askedN)
	})

	t.Run("failover", func(t *testing.T) {
		const key = "survivor"
		// Spend 10 of 20 and give back what the lease holds, so that Redis
		// has the whole state: 10 left.
		sl := newFaultLimiter(t, rdb, ratelimit.PerHour(burst), opts...)
		for range 10 {
			if d, err := sl.Allow(ctx, key); err != nil || !d.Allowed {
				t.Fatalf("before the failover: %+v, %v", d, err)
			}
		}
		if err := sl.Close(ctx); err != nil {
			t.Fatal(err)
		}
		master := c.MasterOf(t, rkey(key))
		// Replication is asynchronous: make sure the replica has the state.
		if n, err := master.Client().Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT = %d, %v; want 1 replica", n, err)
		}
		// Meanwhile a load runs on another key of the same master, which
		// fails while the master is down and opens the breaker.
		busy := ""
		for i := 0; busy == ""; i++ {
			if k := fmt.Sprintf("busy%d", i); c.MasterOf(t, rkey(k)) == master {
				busy = k
			}
		}
		bl := newFaultLimiter(t, rdb, ratelimit.PerSecond(1000), lease.WithKeyspace(ks), lease.WithRefillTimeout(100*time.Millisecond),
			lease.WithFailurePolicy(ratelimit.FailClosed))
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

		// A limiter that knew the old master: until it finds the new one,
		// refills fail; then Redis grants from the replica's state.
		var failed []error
		var admitted int
		for {
			d, err := l.Allow(ctx, key)
			if err == nil {
				if !d.Allowed || d.Source == ratelimit.SourceFallback {
					t.Fatalf("first decision after the failover: %+v; want admitted", d)
				}
				admitted = 1
				break
			}
			if !errors.Is(err, ratelimit.ErrStore) {
				t.Fatalf("after the failover: %v, want an error matching ErrStore", err)
			}
			failed = append(failed, err)
			if time.Since(healthy) > clusterRecovery {
				t.Fatalf("still failing %v after the cluster recovered: %v", clusterRecovery, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		recovered := time.Since(healthy)
		admitted += spend(t, l, key, burst)
		if admitted != 10 {
			t.Errorf("admitted %d after the failover, want the 10 the replica had", admitted)
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
		t.Logf("failover took %v; leasing again %v after the cluster was healthy, after %d failed calls; load on the failed master: %d errors (%d refused by the open breaker), the last %v after the cluster was healthy",
			healthy.Sub(start).Round(time.Millisecond), recovered.Round(time.Millisecond), len(failed),
			loadErrs, circuitOpen, lastErr.Sub(healthy).Round(time.Millisecond))
	})
}
