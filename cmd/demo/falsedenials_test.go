package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// virtualClock is a ratelimit.Clock that shows the time it was last set
// to, and sets miniredis's TIME with it, so that the limiters and the
// scripts read one clock.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
	mr  *miniredis.Miniredis
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
	c.mr.SetTime(t)
}

// arrival is one send of the demo's schedule: client ci at instance ii.
type arrival struct {
	at     time.Duration
	ci, ii int
}

// schedule is the demo's workload for d (runLoad's: each client spread
// evenly over the instances, one worker each with a seeded random phase),
// in time order.
func schedule(p plan, instances int, d time.Duration) []arrival {
	var out []arrival
	for ci, c := range p.clients {
		every := time.Duration(float64(instances) * float64(time.Second) / c.rate)
		if every <= 0 {
			continue
		}
		for ii := range instances {
			rng := rand.New(rand.NewPCG(seed, uint64(ci)<<8|uint64(ii)))
			for at := time.Duration(rng.Int64N(int64(every))); at < d; at += every {
				// Whole microseconds, as Redis's TIME has them: the exact
				// buckets and the scripts then see the same moments.
				out = append(out, arrival{at: at.Truncate(time.Microsecond), ci: ci, ii: ii})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b arrival) int { return int(a.at - b.at) })
	return out
}

// virtualRun sends the arrivals one at a time, each at its own moment of
// a virtual clock that the limiters and miniredis share, through one
// tiers.Limiter per instance built from cfg, and returns each client's
// events as runLoad does. Each check sees every earlier one completed:
// this measures what the limiters decide, free of the scheduling noise of
// a busy machine.
func virtualRun(t *testing.T, p plan, cfg tiers.Config, instances int, arrivals []arrival) [][]event {
	t.Helper()
	mr := miniredis.RunT(t)
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &virtualClock{mr: mr}
	clk.set(epoch)
	ks, err := ratelimit.NewKeyspace("fd")
	if err != nil {
		t.Fatal(err)
	}
	lims := make([]*tiers.Limiter, instances)
	for i := range lims {
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		// Real-time bounds that a stalled test process cannot reach: in
		// virtual time they would only add the machine's noise.
		f := tiers.Redis(rdb, []algorithms.Option{algorithms.WithClock(clk), algorithms.WithTimeout(time.Minute)},
			lease.WithClock(clk), lease.WithInstances(instances),
			lease.WithMaxWait(time.Minute), lease.WithRefillTimeout(time.Minute))
		l, err := tiers.New(f, cfg, tiers.WithKeyspace(ks))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close(context.Background()) })
		lims[i] = l
	}
	evs := make([][]event, len(p.clients))
	for _, a := range arrivals {
		clk.set(epoch.Add(a.at))
		c := p.clients[a.ci]
		res, err := lims[a.ii].Check(context.Background(), c.key, c.ask, 1)
		if err != nil {
			t.Fatalf("check of %s at %v: %v", c.key, a.at, err)
		}
		evs[a.ci] = append(evs[a.ci], eventOf(res, err, a.at))
	}
	return evs
}

// TestLeasingFalseDenials runs the demo's workload (its embedded plans, 3
// instances, 10 s) through leased and per-request limits in virtual time
// and counts false denials as the demo's summary does (replay): leasing
// may deny falsely at most 0.5% of the requests more than per-request
// checks, and must admit what they admit to within that.
func TestLeasingFalseDenials(t *testing.T) {
	cfg, _, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	const instances, d = 3, 10 * time.Second
	p := makePlan(cfg, d)
	arrivals := schedule(p, instances, d)
	leased := replay(p, virtualRun(t, p, cfg, instances, arrivals))
	direct := replay(p, virtualRun(t, p, withoutLease(cfg), instances, arrivals))
	perTier := make([]int64, len(p.tiers))
	for _, a := range arrivals {
		perTier[p.clients[a.ci].tier]++
	}
	for ti, name := range p.tiers {
		l, dr, n := leased[ti], direct[ti], perTier[ti]
		t.Logf("%s: %d requests; false denials: lease %d %v, per-request %d %v; admitted by ideal: lease %d, per-request %d",
			name, n, l.falseDenials, l.causes, dr.falseDenials, dr.causes, l.admitted, dr.admitted)
		if slack := n / 200; l.falseDenials > dr.falseDenials+slack {
			t.Errorf("%s: leasing denied %d requests falsely, per-request checks %d: more than %d (0.5%% of %d) apart",
				name, l.falseDenials, dr.falseDenials, slack, n)
		}
	}
}
