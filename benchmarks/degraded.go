package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
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

// A call is one recorded request of a degraded-mode run.
type call struct {
	at   time.Duration // send time, since the load started
	took time.Duration // until the limiter returned
	ok   bool          // admitted (an error never is)
	src  ratelimit.Source
	err  bool // the limiter returned an error
}

// degradedRun is one limiter through one fault.
type degradedRun struct {
	impl  impl
	f     fault
	calls []call // sorted by send time

	// The fault as it happened, since the load started: the signal or kill
	// was sent at from; the server answered again at to (for a pause, from
	// + the pause length, when SIGCONT is sent).
	from, to time.Duration

	admitted, errs, fallbacks int
	ideal                     int
	idealOK                   []bool // idealOK[i]: the exact bucket admits calls[i]
	busiest                   int    // most admissions in any 1 s window
	duringAdmitted            int    // admitted of the calls sent in [from, to)
	duringIdeal               int    // ideal of the same calls
	windowAdmitted            int    // admitted of the calls sent in [from, to + 1 s)
	windowIdeal               int    // ideal of the same calls
	afterAdmitted             int    // admitted of the calls sent from to on
	afterIdeal                int    // ideal of the same calls
	slowest                   time.Duration
	resumed                   time.Duration
	// resumed is how long after to the first call decided without the
	// failure policy and without an error was sent; -1 when none was.
}

// deviationPct returns (admitted − ideal) ÷ ideal in percent.
func (r degradedRun) deviationPct() float64 {
	if r.ideal == 0 {
		return 0
	}
	return 100 * float64(r.admitted-r.ideal) / float64(r.ideal)
}

// allowance returns burst + rate: the most an exact bucket admits in 1 s.
func allowance() int { return degradedLimit.Burst + degradedLimit.Rate }

// outageBound returns the bound on what a FailLocal limiter may
// admit while Redis is down: 1.2 × rate × outage + burst.
func (r degradedRun) outageBound() int {
	return int(1.2*degradedLimit.PerSecondRate()*(r.to-r.from).Seconds()) + degradedLimit.Burst
}

// analyze fills r's totals from r.calls.
func (r *degradedRun) analyze() {
	slices.SortFunc(r.calls, func(a, b call) int { return int(a.at - b.at) })
	r.idealOK = idealAdmits(r.calls, degradedLimit)
	r.admitted, r.errs, r.fallbacks, r.ideal = 0, 0, 0, 0
	r.duringAdmitted, r.duringIdeal, r.windowAdmitted, r.windowIdeal, r.afterAdmitted, r.afterIdeal = 0, 0, 0, 0, 0, 0
	r.slowest, r.resumed = 0, -1
	for i, c := range r.calls {
		during := c.at >= r.from && c.at < r.to
		window := c.at >= r.from && c.at < r.to+time.Second
		after := c.at >= r.to
		r.slowest = max(r.slowest, c.took)
		if c.ok {
			r.admitted++
			r.duringAdmitted += b2i(during)
			r.windowAdmitted += b2i(window)
			r.afterAdmitted += b2i(after)
		}
		if r.idealOK[i] {
			r.ideal++
			r.duringIdeal += b2i(during)
			r.windowIdeal += b2i(window)
			r.afterIdeal += b2i(after)
		}
		if c.err {
			r.errs++
		}
		if c.src == ratelimit.SourceFallback {
			r.fallbacks++
		}
		if r.resumed < 0 && c.at >= r.to && !c.err && c.src != ratelimit.SourceFallback {
			r.resumed = c.at - r.to
		}
	}
	r.busiest = busiestWindow(r.calls, time.Second)
}

// b2i returns 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// idealAdmits replays calls (sorted by send time) through one exact token
// bucket of lim, full at the first call, and reports which it admits.
// Every call counts, whatever the limiter answered: each is a request that
// arrived.
func idealAdmits(calls []call, lim ratelimit.Limit) []bool {
	at := make([]int64, len(calls))
	for i, c := range calls {
		at[i] = c.at.Nanoseconds()
	}
	return replayExact(lim, at)
}

// busiestWindow returns the most admissions among calls (sorted by send
// time) in any window of length w.
func busiestWindow(calls []call, w time.Duration) int {
	most, lo, n := 0, 0, 0
	var at []time.Duration
	for _, c := range calls {
		if !c.ok {
			continue
		}
		at = append(at, c.at)
		n++
		for c.at-at[lo] >= w {
			lo++
		}
		most = max(most, n-lo)
	}
	return most
}

// bins returns, per degradedBin of the run, the admissions, the
// admissions by the failure policy and the ideal's admissions.
func (r degradedRun) bins() (admitted, byFallback, ideal []float64) {
	n := int((r.f.run + degradedBin - 1) / degradedBin)
	admitted, byFallback, ideal = make([]float64, n), make([]float64, n), make([]float64, n)
	for i, c := range r.calls {
		b := min(int(c.at/degradedBin), n-1)
		if c.ok {
			admitted[b]++
			if c.src == ratelimit.SourceFallback {
				byFallback[b]++
			}
		}
		if r.idealOK[i] {
			ideal[b]++
		}
	}
	return admitted, byFallback, ideal
}

// A degradedDecider is one instance of a limiter under test. allow must be
// safe for concurrent use.
type degradedDecider struct {
	allow func(ctx context.Context, key string) (ok bool, src ratelimit.Source, err error)
	close func()
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
			allow: func(ctx context.Context, key string) (bool, ratelimit.Source, error) {
				d, err := l.Allow(ctx, key)
				return d.Allowed && err == nil, d.Source, err
			},
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
			allow: func(ctx context.Context, key string) (bool, ratelimit.Source, error) {
				d, err := l.Allow(ctx, key)
				return d.Allowed && err == nil, d.Source, err
			},
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

// procT lets the benchmarks use redistest's Server, whose Start, Freeze and
// Restart take a testing.TB, outside a test: it implements the methods
// they call (Helper, TempDir, Cleanup, Fatal, Fatalf, Skip and kin).
// The embedded TB is nil; any other method would panic, and do turns that
// into an error. Call redistest only inside do, and cleanup at the end.
type procT struct {
	testing.TB

	mu       sync.Mutex // protects the fields below
	cleanups []func()
	failure  error
}

func (t *procT) Helper()                         {}
func (t *procT) Name() string                    { return "benchmarks" }
func (t *procT) Log(args ...any)                 {}
func (t *procT) Logf(format string, args ...any) {}

// Cleanup registers f to run at cleanup, last registered first.
func (t *procT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir returns a new directory, removed at cleanup.
func (t *procT) TempDir() string {
	dir, err := os.MkdirTemp("", "ratelimit-degraded-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fail records err (the first wins) and ends the calling goroutine, as
// testing's FailNow does.
func (t *procT) fail(err error) {
	t.mu.Lock()
	if t.failure == nil {
		t.failure = err
	}
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *procT) Fatal(args ...any)                 { t.fail(errors.New(fmt.Sprint(args...))) }
func (t *procT) Fatalf(format string, args ...any) { t.fail(fmt.Errorf(format, args...)) }
func (t *procT) Error(args ...any)                 { t.fail(errors.New(fmt.Sprint(args...))) }
func (t *procT) Errorf(format string, args ...any) { t.fail(fmt.Errorf(format, args...)) }
func (t *procT) FailNow()                          { t.fail(errors.New("FailNow")) }
func (t *procT) Skip(args ...any)                  { t.fail(fmt.Errorf("%w: %s", errNoServer, fmt.Sprint(args...))) }
func (t *procT) Skipf(format string, args ...any) {
	t.fail(fmt.Errorf("%w: %s", errNoServer, fmt.Sprintf(format, args...)))
}
func (t *procT) SkipNow() { t.fail(errNoServer) }

// do runs f on a goroutine of its own, so that a Fatal or Skip inside it
// (runtime.Goexit) or a panic ends f alone, and returns what ended it.
func (t *procT) do(f func()) error {
	done := make(chan error, 1)
	go func() {
		finished := false
		defer func() {
			if finished {
				done <- nil
				return
			}
			if p := recover(); p != nil {
				done <- fmt.Errorf("redistest: %v", p)
				return
			}
			t.mu.Lock()
			err := t.failure
			t.mu.Unlock()
			if err == nil {
				err = errors.New("redistest: ended without a reason")
			}
			done <- err
		}()
		f()
		finished = true
	}()
	return <-done
}

// cleanup runs the registered cleanups, last registered first.
func (t *procT) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
