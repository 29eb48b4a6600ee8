package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on the measured loops besides their durations: no goroutine does
// more than maxRatePerGoroutine × its phase's seconds operations (far above
// what one goroutine can do), and a paced goroutine never catches up more
// than maxLag of demand at once.
const (
	maxRatePerGoroutine = 50_000_000
	maxLag              = 20 * time.Millisecond
)

// loopStats is what one goroutine measured. Each goroutine has its own,
// written only by it.
type loopStats struct {
	h         hist
	ops       int64
	allowed   int64
	errs      int64
	fallbacks int64
	skipped   int64
	// first and last are the midpoints of a paced goroutine's first and
	// last calls: the best local estimate of when Redis decided them.
	first, last time.Time
	firstErr    error
	// arrivals are the midpoints of a paced goroutine's decided calls, ns
	// after the phase's start; preallocated, so appending never allocates.
	arrivals []int64
}

// note records the outcome of one call that took d.
func (s *loopStats) note(o outcome, err error, d time.Duration) {
	s.h.record(d)
	switch {
	case err != nil:
		s.errs++
		if s.firstErr == nil {
			s.firstErr = err
		}
	case o == fallback:
		s.fallbacks++
	case o == admitted:
		s.ops++
		s.allowed++
	default:
		s.ops++
	}
}

// xorshift is a tiny per-goroutine generator for uniform key choice: no
// lock and no allocation on the hot loop.
func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

// closedLoop calls d as fast as it can until the deadline, stop, or max
// calls, recording each call's duration.
func closedLoop(ctx context.Context, d decider, keys []string, deadline time.Time, maxOps int, seed uint64, stop *atomic.Bool, s *loopStats) {
	rng := seed | 1
	n := uint64(len(keys))
	for i := 0; i < maxOps; i++ {
		k := keys[0]
		if n > 1 {
			rng = xorshift(rng)
			k = keys[rng%n]
		}
		t0 := time.Now()
		o, err := d.allow(ctx, k)
		t1 := time.Now()
		s.note(o, err, t1.Sub(t0))
		if !t1.Before(deadline) || stop.Load() {
			return
		}
	}
}

// pacedLoop sends rate requests per second from start until end, or max
// calls: at each wake it sends the requests now due, then sleeps until the
// next one is. It records each decided call's midpoint, in ns after base,
// as an arrival. A sender that fell more than maxLag behind drops the
// backlog (counted as skipped) rather than bursting to catch up.
func pacedLoop(ctx context.Context, d decider, key string, rate float64, base, start, end time.Time, maxOps int, stop *atomic.Bool, s *loopStats) {
	lagCap := int64(math.Max(1, rate*maxLag.Seconds()))
	var sent int64
	for sent < int64(maxOps) && !stop.Load() {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		due := int64(math.Floor(now.Sub(start).Seconds()*rate)) + 1 // the first request is due at start
		if due-sent > lagCap {
			s.skipped += due - sent - lagCap
			sent = due - lagCap
		}
		for ; sent < due && sent < int64(maxOps); sent++ {
			t0 := time.Now()
			o, err := d.allow(ctx, key)
			t1 := time.Now()
			s.note(o, err, t1.Sub(t0))
			s.last = t0.Add(t1.Sub(t0) / 2)
			if s.first.IsZero() {
				s.first = s.last
			}
			if err == nil && o != fallback && len(s.arrivals) < cap(s.arrivals) {
				s.arrivals = append(s.arrivals, int64(s.last.Sub(base)))
			}
		}
		next := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
		if wait := time.Until(next); wait > 0 {
			time.Sleep(min(wait, time.Until(end)))
		}
	}
}

// runner runs rows against one Redis server.
type runner struct {
	addr   string
	prefix string // unique to this run, so rows never share keys
	ph     phases
	seq    atomic.Int64
}

// run measures im on w.
func (rn *runner) run(ctx context.Context, im impl, w workload) (result, error) {
	prefix := fmt.Sprintf("%s%d:", rn.prefix, rn.seq.Add(1))
	ds := make([]decider, 0, w.instances)
	defer func() {
		for _, d := range ds {
			d.close()
		}
	}()
	for range w.instances {
		d, err := newDecider(im, rn.addr, prefix, w.limit())
		if err != nil {
			return result{}, err
		}
		ds = append(ds, d)
	}
	var r result
	if w.accuracy() {
		keys := rowKeys(im, prefix, 2) // the hot key and a key to warm up with
		r = rn.paced(ctx, ds, keys[0], keys[1], w)
	} else {
		keys := rowKeys(im, prefix, w.keys)
		rn.closed(ctx, ds, keys, w, rn.ph.warmup) // warm up: connections, scripts, leases
		r = rn.closed(ctx, ds, keys, w, rn.ph.measure)
	}
	r.impl, r.w = im, w
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.ops == 0 && r.firstErr != nil && r.fallbacks == 0 {
		return r, fmt.Errorf("%v %s: every call failed: %w", im, w.short(), r.firstErr)
	}
	return r, nil
}

// measured runs body with the Redis calls and heap allocations around it
// counted, and folds the goroutines' stats into a result.
func measured(ds []decider, stats []*loopStats, body func()) result {
	calls := func() (n, refillErrs int64) {
		for _, d := range ds {
			n += d.redisCalls()
			refillErrs += d.refillErrors()
		}
		return n, refillErrs
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	calls0, refillErrs0 := calls()
	mallocs0 := ms.Mallocs
	start := time.Now()
	body()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms)
	calls1, refillErrs1 := calls()
	r := result{calls: calls1 - calls0, refillErrs: refillErrs1 - refillErrs0, mallocs: ms.Mallocs - mallocs0, elapsed: elapsed}
	var h hist
	for _, s := range stats {
		h.merge(&s.h)
		r.ops += s.ops
		r.allowed += s.allowed
		r.errs += s.errs
		r.fallbacks += s.fallbacks
		r.skipped += s.skipped
		if r.firstErr == nil {
			r.firstErr = s.firstErr
		}
	}
	r.p50, r.p99, r.max = h.quantile(0.50), h.quantile(0.99), time.Duration(h.max)
	return r
}

// newStats allocates one loopStats per goroutine, each with room for
// arrivals arrival times, before the measured phase, so that none of it
// counts as the phase's allocations.
func newStats(n, arrivals int) []*loopStats {
	s := make([]*loopStats, n)
	for i := range s {
		s[i] = &loopStats{arrivals: make([]int64, 0, arrivals)}
	}
	return s
}

// stopOnDone sets stop when ctx is done, so loops need not poll ctx (whose
// Err takes a lock). Call the returned func when the phase ends.
func stopOnDone(ctx context.Context, stop *atomic.Bool) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()
	return func() { close(done) }
}

// closed runs a closed-loop phase of length dur: every goroutine of every
// instance calls its instance as fast as it can.
func (rn *runner) closed(ctx context.Context, ds []decider, keys []string, w workload, dur time.Duration) result {
	stats := newStats(len(ds)*w.goroutines, 0)
	maxOps := int(max(1, float64(maxRatePerGoroutine)*dur.Seconds()))
	var stop atomic.Bool
	release := stopOnDone(ctx, &stop)
	defer release()
	return measured(ds, stats, func() {
		var wg sync.WaitGroup
		deadline := time.Now().Add(dur)
		for i, s := range stats {
			wg.Go(func() {
				closedLoop(ctx, ds[i%len(ds)], keys, deadline, maxOps, uint64(i+1)*0x9E3779B97F4A7C15, &stop, s)
			})
		}
		wg.Wait()
	})
}

// paced runs an accuracy phase: the instances together send w.demand × the
// limit's rate to the hot key, spread evenly over their goroutines. Every
// goroutine first makes one call on warmKey, so connections are open and
// scripts loaded before the hot key's first request. The result's elapsed
// runs from the midpoint of the first call to the midpoint of the last.
func (rn *runner) paced(ctx context.Context, ds []decider, key, warmKey string, w workload) result {
	total := w.demand * w.limit().PerSecondRate()
	per := total / float64(w.instances*w.goroutines)
	maxOps := int(per*rn.ph.accuracy.Seconds()*1.5) + 10
	stats := newStats(w.instances*w.goroutines, maxOps)
	var wg sync.WaitGroup
	for i := range stats {
		wg.Go(func() { _, _ = ds[i%len(ds)].allow(ctx, warmKey) })
	}
	wg.Wait()
	var stop atomic.Bool
	release := stopOnDone(ctx, &stop)
	defer release()
	r := measured(ds, stats, func() {
		var wg sync.WaitGroup
		start := time.Now().Add(time.Millisecond) // let every goroutine start first
		end := start.Add(rn.ph.accuracy)
		for i, s := range stats {
			// Stagger the goroutines within one request interval so the
			// demand arrives evenly, not in lockstep.
			st := start.Add(time.Duration(float64(i) / float64(len(stats)) / per * float64(time.Second)))
			wg.Go(func() { pacedLoop(ctx, ds[i%len(ds)], key, per, start, st, end, maxOps, &stop, s) })
		}
		wg.Wait()
	})
	var first, last time.Time
	for _, s := range stats {
		if !s.first.IsZero() && (first.IsZero() || s.first.Before(first)) {
			first = s.first
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	if !first.IsZero() {
		r.elapsed = last.Sub(first)
	}
	var arrivals []int64
	for _, s := range stats {
		arrivals = append(arrivals, s.arrivals...)
	}
	r.exact, r.replayed = exactAdmissions(arrivals, w.limit()), true
	return r
}
