package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redirects counts the MOVED and ASK replies that a cluster client's node
// connections receive, before the client follows them.
type redirects struct{ moved, ask atomic.Int64 }

func (r *redirects) count(err error) {
	switch {
	case err == nil:
	case strings.HasPrefix(err.Error(), "MOVED "):
		r.moved.Add(1)
	case strings.HasPrefix(err.Error(), "ASK "):
		r.ask.Add(1)
	}
}

// hook installs r on every node client of a cluster client.
func (r *redirects) hook(o *redis.ClusterOptions) {
	o.NewClient = func(opt *redis.Options) *redis.Client {
		c := redis.NewClient(opt)
		c.AddHook(r)
		return c
	}
}

func (r *redirects) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *redirects) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		r.count(err)
		return err
	}
}

func (r *redirects) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		r.count(err)
		return err
	}
}

const incrScript = "return redis.call('INCR', KEYS[1])"

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, 3, 0)
	t.Logf("3-master cluster ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	p := Prefix(t)

	if n := len(c.Nodes()); n != 3 {
		t.Fatalf("%d nodes, want 3", n)
	}
	masters := c.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}

	var r redirects
	client := c.Client(r.hook)

	t.Run("keys spread over masters", func(t *testing.T) {
		served := map[*Server]int{}
		for i := range 30 {
			k := fmt.Sprintf("%sk%d", p, i)
			if err := client.Set(ctx, k, i, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
			served[c.MasterOf(t, k)]++
		}
		for i := range 30 {
			k := fmt.Sprintf("%sk%d", p, i)
			if v, err := client.Get(ctx, k).Int(); err != nil || v != i {
				t.Fatalf("GET %s = %d, %v; want %d", k, v, err, i)
			}
		}
		if len(served) != 3 {
			t.Fatalf("30 keys landed on %d masters, want 3: %v", len(served), served)
		}
		// Each key is on the master MasterOf names: a plain client of that
		// node reads it without a redirect.
		k := p + "k0"
		if v, err := c.MasterOf(t, k).Client().Get(ctx, k).Int(); err != nil || v != 0 {
			t.Fatalf("GET %s on MasterOf = %d, %v", k, v, err)
		}
	})

	t.Run("a hash tag keeps keys in one slot", func(t *testing.T) {
		keys := []string{"rl:{c:alice}:gcra", "rl:{c:alice}:token_bucket", "other:{c:alice}", "{c:alice}"}
		want := c.Slot(t, "c:alice")
		for _, k := range keys {
			if got := c.Slot(t, k); got != want {
				t.Errorf("slot of %q = %d, want %d (the slot of c:alice)", k, got, want)
			}
		}
		if c.Slot(t, "rl:{c:bob}:gcra") == want {
			t.Fatalf("c:bob and c:alice share slot %d; pick other keys", want)
		}
		// A script touching all of them runs on one node.
		args := make([]string, len(keys))
		for i, k := range keys {
			args[i] = p + k
		}
		const script = "for _, k in ipairs(KEYS) do redis.call('SET', k, 'v') end return #KEYS"
		if n, err := client.Eval(ctx, script, args).Int(); err != nil || n != len(keys) {
			t.Fatalf("multi-key script = %d, %v", n, err)
		}
	})

	t.Run("MoveSlot and MOVED", func(t *testing.T) {
		key := p + "{c:bob}"
		slot := c.Slot(t, key)
		if err := client.Set(ctx, key, "bob", 0).Err(); err != nil {
			t.Fatal(err)
		}
		from := c.MasterOf(t, key)
		to := otherMaster(t, c, from)
		before := r.moved.Load()

		c.MoveSlot(t, slot, to)

		if got := c.MasterOf(t, key); got != to {
			t.Fatalf("after MoveSlot, MasterOf = %s, want %s", got.Addr(), to.Addr())
		}
		err := from.Client().Get(ctx, key).Err()
		if want := fmt.Sprintf("MOVED %d %s", slot, to.Addr()); err == nil || err.Error() != want {
			t.Fatalf("GET on the old master: %v, want %s", err, want)
		}
		// The client still maps the slot to the old master: it gets MOVED
		// and follows it.
		if v, err := client.Get(ctx, key).Result(); err != nil || v != "bob" {
			t.Fatalf("GET %s after MoveSlot = %q, %v", key, v, err)
		}
		if r.moved.Load() == before {
			t.Fatal("the client received no MOVED reply")
		}
		if n, err := client.Eval(ctx, incrScript, []string{key + ":n"}).Int(); err != nil || n != 1 {
			t.Fatalf("script on the moved slot = %d, %v", n, err)
		}
	})

	t.Run("a slot half moved answers ASK", func(t *testing.T) {
		a, b := p+"{c:carol}:a", p+"{c:carol}:b"
		for _, k := range []string{a, b} {
			if err := client.Set(ctx, k, "10", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		slot := c.Slot(t, a)
		from := c.MasterOf(t, a)
		m := c.BeginMoveSlot(t, slot, otherMaster(t, c, from))
		if m.From() != from {
			t.Fatalf("SlotMove.From = %s, want %s", m.From().Addr(), from.Addr())
		}
		m.MoveKeys(t, a)

		err := from.Client().Get(ctx, a).Err()
		if want := fmt.Sprintf("ASK %d %s", slot, m.To().Addr()); err == nil || err.Error() != want {
			t.Fatalf("GET of a moved key on the source: %v, want %s", err, want)
		}
		err = from.Client().MGet(ctx, a, b).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			t.Fatalf("MGET of a split slot on the source: %v, want TRYAGAIN", err)
		}
		before := r.ask.Load()
		if n, err := client.Eval(ctx, incrScript, []string{a}).Int(); err != nil || n != 11 {
			t.Fatalf("script on the moved key = %d, %v; want 11", n, err)
		}
		if r.ask.Load() == before {
			t.Fatal("the client received no ASK reply")
		}
		if n, err := client.Eval(ctx, incrScript, []string{b}).Int(); err != nil || n != 11 {
			t.Fatalf("script on the key not yet moved = %d, %v; want 11", n, err)
		}

		m.Finish(t)
		for _, k := range []string{a, b} {
			if got := c.MasterOf(t, k); got != m.To() {
				t.Fatalf("after Finish, MasterOf(%s) = %s, want %s", k, got.Addr(), m.To().Addr())
			}
			if v, err := m.To().Client().Get(ctx, k).Result(); err != nil || v != "11" {
				t.Fatalf("GET %s on the destination = %q, %v; want 11", k, v, err)
			}
		}
	})
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, 3, 1)
	t.Logf("3×1 cluster ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	if n := len(c.Nodes()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	masters := c.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	for _, m := range masters {
		if rs := c.Replicas(t, m); len(rs) != 1 {
			t.Fatalf("master %s has %d replicas, want 1", m.Addr(), len(rs))
		}
	}

	// Clients that know the slot map from before the crash: one with the
	// go-redis defaults, one that reloads the map every 200 ms.
	client := c.Client()
	fast := c.Client(func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = 200 * time.Millisecond })
	key := Prefix(t) + "{c:dave}"
	if err := client.Set(ctx, key, "dave", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := fast.Get(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	master := c.MasterOf(t, key)
	replica := c.Replicas(t, master)[0]
	// Make sure the write reached the replica before the crash.
	waitReplica(t, master.Client())

	start = time.Now()
	promoted := c.Failover(t, master)
	t.Logf("failover took %v", time.Since(start).Round(time.Millisecond))
	if promoted != replica {
		t.Fatalf("Failover promoted %s, want the replica %s", promoted.Addr(), replica.Addr())
	}
	if got := c.MasterOf(t, key); got != promoted {
		t.Fatalf("after Failover, MasterOf = %s, want %s", got.Addr(), promoted.Addr())
	}
	if len(c.Masters(t)) != 3 {
		t.Fatalf("%d masters after failover, want 3", len(c.Masters(t)))
	}
	if v, err := c.Client().Get(ctx, key).Result(); err != nil || v != "dave" {
		t.Fatalf("a new client: GET %s = %q, %v; want the value written before the crash", key, v, err)
	}

	// getWithin retries GET until it returns the value or d passes, and
	// returns the errors it saw.
	getWithin := func(rc *redis.ClusterClient, d time.Duration, before func()) []string {
		var errs []string
		deadline := time.Now().Add(d)
		for {
			if before != nil {
				before()
			}
			v, err := rc.Get(ctx, key).Result()
			if err == nil && v == "dave" {
				return errs
			}
			errs = append(errs, fmt.Sprint(err))
			if time.Now().After(deadline) {
				t.Fatalf("the client did not find the new master within %v: %q", d, errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	errs := getWithin(fast, 3*time.Second, nil)
	t.Logf("client with a 200 ms reload interval: %d errors before it found the new master", len(errs))
	// With the defaults, the client keeps dialling the dead master (see
	// Cluster.Client) until it reloads its slot map.
	err := client.Get(ctx, key).Err()
	t.Logf("client with the defaults, after the failover: %v", err)
	errs = getWithin(client, 3*time.Second, func() { client.ReloadState(ctx) })
	t.Logf("client with the defaults, calling ReloadState: %d errors before it found the new master", len(errs))

	// The crashed master comes back empty and becomes a replica of its
	// successor.
	master.Restart()
	c.WaitOK(t)
	if rs := c.Replicas(t, promoted); len(rs) != 1 || rs[0] != master {
		t.Fatalf("after restart, replicas of %s = %v, want the restarted %s", promoted.Addr(), rs, master.Addr())
	}
	// Its link is up, so it has synced: it serves the key to a client
	// that allows replica reads.
	ro := master.Client(func(o *redis.Options) {
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	})
	if v, err := ro.Get(ctx, key).Result(); err != nil || v != "dave" {
		t.Fatalf("GET on the restarted replica = %q, %v; want dave", v, err)
	}
}

// otherMaster returns a master of c other than m.
func otherMaster(t *testing.T, c *Cluster, m *Server) *Server {
	t.Helper()
	for _, o := range c.Masters(t) {
		if o != m {
			return o
		}
	}
	t.Fatal("no other master")
	return nil
}

// waitReplica waits until one replica of the master behind rdb has every
// write made so far: WAIT returns as soon as it has, and on a loaded
// machine a replica can take seconds to catch up, so it asks again, up to
// ten times a second each (within the client's read timeout).
func waitReplica(t *testing.T, rdb *redis.Client) {
	t.Helper()
	var n int
	var err error
	for range 10 {
		if n, err = rdb.Do(t.Context(), "WAIT", 1, 1000).Int(); err == nil && n >= 1 {
			return
		}
	}
	t.Fatalf("WAIT = %d, %v; want 1 replica", n, err)
}
