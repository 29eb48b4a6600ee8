package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// The degraded-mode section: each limiter with its DEFAULT options, several
// instances each with its own client, paced open-loop demand on a hot key,
// and a redis-server of the run's own that is frozen (SIGSTOP, then
// SIGCONT) or killed and restarted partway through. Every decision is
// recorded at its send time; algorithms.TokenBucketModel replayed over all
// the arrivals is the ideal.

// degradedLimit is the limit of the degraded-mode runs.
var degradedLimit = ratelimit.PerSecond(1000).WithBurst(1000)

// degradedBin is the width of one bar of the degraded-mode charts.
const degradedBin = 100 * time.Millisecond

// A faultKind is what is done to Redis.
type faultKind int

const (
	faultPause faultKind = iota // SIGSTOP for d, then SIGCONT (redistest.Server.Freeze)
	faultKill                   // SIGKILL, d down, restart empty on the same port
)

// A fault is one degraded-mode scenario, run once per limiter.
type fault struct {
	kind       faultKind
	d          time.Duration // pause length or outage
	at         time.Duration // when the fault starts, after the load began
	run        time.Duration // how long the load runs
	goroutines []int         // paced callers per instance; len is the instance count
	demand     float64       // offered load, in multiples of degradedLimit's rate
}

// instances returns the number of limiter instances.
func (f fault) instances() int { return len(f.goroutines) }

// callers returns the paced callers of all instances.
func (f fault) callers() int {
	n := 0
	for _, g := range f.goroutines {
		n += g
	}
	return n
}

// offered returns the demand in requests per second.
func (f fault) offered() float64 { return f.demand * degradedLimit.PerSecondRate() }

// label names the fault: "pause 200 ms" or "kill 3 s".
func (f fault) label() string {
	if f.kind == faultKill {
		return "kill " + fmtDur(f.d)
	}
	return "pause " + fmtDur(f.d)
}

// describe says what was done, for tables and chart titles.
func (f fault) describe() string {
	if f.kind == faultKill {
		return fmt.Sprintf("Redis killed (SIGKILL) at %s, restarted empty %s later", fmtSecs(f.at), fmtDur(f.d))
	}
	return fmt.Sprintf("Redis paused (SIGSTOP) at %s for %s", fmtSecs(f.at), fmtDur(f.d))
}

// workloadLabel says the instances and demand: "4 instances, 10× (10,000/s)".
func (f fault) workloadLabel() string {
	return fmt.Sprintf("%d instances, %g× the rate (%s/s)", f.instances(), f.demand, fmtRate(f.offered()))
}

// fmtSecs formats d in seconds: "2 s", "0.7 s".
func fmtSecs(d time.Duration) string { return fmt.Sprintf("%g s", d.Seconds()) }

// faultsFor returns the scenarios of a full or -short run. The pauses
// put 4 instances at 10× the limit with callers weighted 40/30/20/10; the
// kill puts 2 instances at 4× weighted 60/40. A full run is 3 × (6 + 6 +
// 7) s of load, about a minute; a short run 3 × (2 + 2.5) s.
func faultsFor(short bool) []fault {
	pauseCallers := []int{13, 10, 6, 3} // 32 callers at 312.5/s: 10,000/s
	killCallers := []int{10, 6}         // 16 callers at 250/s: 4,000/s
	if short {
		return []fault{
			{kind: faultPause, d: 200 * time.Millisecond, at: 700 * time.Millisecond, run: 2 * time.Second, goroutines: pauseCallers, demand: 10},
			{kind: faultKill, d: time.Second, at: 500 * time.Millisecond, run: 2500 * time.Millisecond, goroutines: killCallers, demand: 4},
		}
	}
	return []fault{
		{kind: faultPause, d: 200 * time.Millisecond, at: 2 * time.Second, run: 6 * time.Second, goroutines: pauseCallers, demand: 10},
		{kind: faultPause, d: 500 * time.Millisecond, at: 2 * time.Second, run: 6 * time.Second, goroutines: pauseCallers, demand: 10},
		{kind: faultKill, d: 3 * time.Second, at: 2 * time.Second, run: 7 * time.Second, goroutines: killCallers, demand: 4},
	}
}

// A degradedDecider is one instance of a limiter under test. allow must be
// safe for concurrent use.
type degradedDecider struct {
	allow func(ctx context.Context, key string) (ok bool, src ratelimit.Source, err error)
	close func()
}

// allowOf is the allow of a degradedDecider over a ratelimit.Limiter.
func allowOf(l ratelimit.Limiter) func(ctx context.Context, key string) (bool, ratelimit.Source, error) {
	return func(ctx context.Context, key string) (bool, ratelimit.Source, error) {
		d, err := l.Allow(ctx, key)
		return d.Allowed && err == nil, d.Source, err
	}
}

// quietLogger discards the limiters' logs (breaker state changes, refill
// failures): a fault makes many, and they would bury the progress lines.
var quietLogger = slog.New(slog.DiscardHandler)

// newDegradedDecider returns one instance of im with its DEFAULT options
// (only a keyspace and a quiet logger), with its own client of addr.
func newDegradedDecider(im impl, addr, prefix string) (degradedDecider, error) {
	var calls atomic.Int64
	rdb := newClient(addr, &calls)
	ks, err := ratelimit.NewKeyspace(prefix)
	if err != nil {
		_ = rdb.Close()
		return degradedDecider{}, err
	}
	switch im {
	case implLease:
		l, err := lease.New(rdb, degradedLimit, lease.WithKeyspace(ks), lease.WithLogger(quietLogger))
		if err != nil {
			_ = rdb.Close()
			return degradedDecider{}, err
		}
		return degradedDecider{
			allow: allowOf(l),
			close: func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = l.Close(ctx)
				_ = rdb.Close()
			},
		}, nil
	case implTokenBucket:
		l, err := algorithms.NewLimiter(rdb, degradedLimit, algorithms.WithAlgorithm(algorithms.TokenBucket),
			algorithms.WithKeyspace(ks), algorithms.WithLogger(quietLogger))
		if err != nil {
			_ = rdb.Close()
			return degradedDecider{}, err
		}
		return degradedDecider{
			allow: allowOf(l),
			close: func() { _ = rdb.Close() },
		}, nil
	case implRedisRate:
		l := redis_rate.NewLimiter(rdb)
		lim := redis_rate.Limit{Rate: degradedLimit.Rate, Burst: degradedLimit.Burst, Period: degradedLimit.Period}
		return degradedDecider{
			allow: func(ctx context.Context, key string) (bool, ratelimit.Source, error) {
				res, err := l.Allow(ctx, prefix+key, lim)
				if err != nil {
					return false, ratelimit.SourceRedis, err
				}
				return res.Allowed > 0, ratelimit.SourceRedis, nil
			},
			close: func() { _ = rdb.Close() },
		}, nil
	}
	_ = rdb.Close()
	return degradedDecider{}, fmt.Errorf("unknown implementation %v", im)
}

// errNoServer is returned by runDegraded when no redis-server of its own
// can be started; the section is then left out.
var errNoServer = errors.New("no redis-server to start")

// runDegradedSection runs the degraded-mode section. When no redis-server
// can be started for it, it logs why and returns a section that says so.
func runDegradedSection(ctx context.Context, short bool, prefix string, logf func(string, ...any)) (degradedSection, error) {
	runs, err := runDegraded(ctx, short, prefix, logf)
	if errors.Is(err, errNoServer) {
		logf("degraded-mode section skipped: %v", err)
		return degradedSection{skipped: err.Error()}, nil
	}
	return degradedSection{runs: runs}, err
}

// runDegraded runs every fault for every limiter, each run on a fresh
// redis-server of its own (a fault must not touch the server of the other
// rows, or one given with -redis).
func runDegraded(ctx context.Context, short bool, prefix string, logf func(string, ...any)) ([]degradedRun, error) {
	faults := faultsFor(short)
	var out []degradedRun
	for fi, f := range faults {
		for _, im := range impls {
			r, err := runFault(ctx, im, f, fmt.Sprintf("%sdeg%d.%v:", prefix, fi, im))
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				return nil, fmt.Errorf("degraded %v %s: %w", im, f.label(), err)
			}
			out = append(out, r)
			logf("[degraded %d/%d] %s", len(out), len(faults)*len(impls), degradedLine(r))
		}
	}
	return out, nil
}

// degradedLine is the log line of one degraded-mode run.
func degradedLine(r degradedRun) string {
	return fmt.Sprintf("%-11v %-13s admitted %6s  ideal %6s  (%+6.2f%%)  errors %6s  fallbacks %6s  busiest 1 s %5s (allowance %s)",
		r.impl, r.f.label(), fmtInt(int64(r.admitted)), fmtInt(int64(r.ideal)), r.deviationPct(),
		fmtInt(int64(r.errs)), fmtInt(int64(r.fallbacks)), fmtInt(int64(r.busiest)), fmtInt(int64(allowance())))
}

// runFault runs im through f on a redis-server of its own.
func runFault(ctx context.Context, im impl, f fault, prefix string) (degradedRun, error) {
	pt := &procT{}
	defer pt.cleanup()
	var srv *redistest.Server
	if err := pt.do(func() { srv = redistest.Start(pt) }); err != nil {
		return degradedRun{}, err
	}
	ds := make([]degradedDecider, 0, f.instances())
	defer func() {
		for _, d := range ds {
			d.close()
		}
	}()
	for range f.instances() {
		d, err := newDegradedDecider(im, srv.Addr(), prefix)
		if err != nil {
			return degradedRun{}, err
		}
		ds = append(ds, d)
	}
	// Warm up: every caller's instance opens a connection and loads its
	// script on another key before the hot key's first request.
	var wg sync.WaitGroup
	for i, g := range f.goroutines {
		for range g {
			wg.Go(func() { _, _, _ = ds[i].allow(ctx, "warm") })
		}
	}
	wg.Wait()

	r := degradedRun{impl: im, f: f}
	var stop atomic.Bool
	release := stopOnDone(ctx, &stop)
	defer release()
	gap := time.Duration(float64(time.Second) * float64(f.callers()) / f.offered())
	maxCalls := int(f.run/gap) + 2
	// Each call gets a deadline far past the run's end, so that a call
	// never outlives the run by much and yet no limiter sees a caller
	// deadline during it.
	callCtx, cancel := context.WithDeadline(ctx, time.Now().Add(f.run+10*time.Second))
	defer cancel()
	start := time.Now().Add(time.Millisecond)
	per := make([][]call, f.callers())
	k := 0
	for i, g := range f.goroutines {
		for j := range g {
			mine := make([]call, 0, maxCalls)
			offset := time.Duration(j) * gap / time.Duration(g) // stagger the callers over one gap
			idx := k
			k++
			wg.Go(func() { per[idx] = pace(callCtx, ds[i].allow, start, offset, gap, f.run, maxCalls, &stop, mine) })
		}
	}
	faultErr := make(chan error, 1)
	go func() { faultErr <- inject(pt, srv, f, start, &stop, &r) }()
	wg.Wait()
	if err := <-faultErr; err != nil {
		return degradedRun{}, err
	}
	if err := ctx.Err(); err != nil {
		return degradedRun{}, err
	}
	for _, c := range per {
		r.calls = append(r.calls, c...)
	}
	r.analyze()
	if r.admitted == 0 {
		return r, errors.New("nothing was admitted")
	}
	return r, nil
}

// pace sends one request on "hot" every gap, from start+offset until
// start+run, at most maxCalls, and records each into calls. It is open
// loop: a late call does not push the next ones back, so after a stall
// the caller sends what fell due meanwhile.
func pace(ctx context.Context, allow func(context.Context, string) (bool, ratelimit.Source, error),
	start time.Time, offset, gap, run time.Duration, maxCalls int, stop *atomic.Bool, calls []call) []call {
	next := start.Add(offset)
	end := start.Add(run)
	for n := 0; n < maxCalls && !stop.Load(); n++ {
		if s := time.Until(next); s > 0 {
			time.Sleep(s)
		}
		sent := time.Now()
		if !sent.Before(end) {
			break
		}
		ok, src, err := allow(ctx, "hot")
		calls = append(calls, call{at: sent.Sub(start), took: time.Since(sent), ok: ok, src: src, err: err != nil})
		next = next.Add(gap)
	}
	return calls
}

// inject waits until f is due and does it to srv, recording in r when
// the fault began and when the server answered again.
func inject(pt *procT, srv *redistest.Server, f fault, start time.Time, stop *atomic.Bool, r *degradedRun) error {
	if !sleepUntil(start.Add(f.at), stop) {
		return nil
	}
	r.from = time.Since(start)
	switch f.kind {
	case faultPause:
		if err := pt.do(func() { srv.Freeze(f.d) }); err != nil {
			return err
		}
		r.to = r.from + f.d
	case faultKill:
		srv.Kill()
		sleepUntil(start.Add(r.from+f.d), stop) // restart even when stopped, to leave no server down
		if err := pt.do(srv.Restart); err != nil {
			return err
		}
		r.to = time.Since(start)
	}
	return nil
}

// sleepUntil sleeps until t in steps of at most 50 ms, and reports false
// if stop was set first.
func sleepUntil(t time.Time, stop *atomic.Bool) bool {
	for {
		if stop.Load() {
			return false
		}
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		time.Sleep(min(d, 50*time.Millisecond))
	}
}
