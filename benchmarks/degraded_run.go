package main

import (
	"slices"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

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
