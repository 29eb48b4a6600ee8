package main

import (
	"math"
	"slices"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// A result is one measured row.
type result struct {
	impl impl
	w    workload

	ops        int64         // decisions made (allowed + denied); errors and fallbacks excluded
	allowed    int64         // admitted requests
	errs       int64         // calls that returned an error
	fallbacks  int64         // decisions made by a failure policy without Redis (Source == SourceFallback); not counted in ops
	skipped    int64         // paced requests dropped because the sender fell behind
	elapsed    time.Duration // wall time of the measured phase
	p50, p99   time.Duration // per-call latency, errors included
	max        time.Duration // the slowest call
	refillErrs int64         // lease refills that failed during the phase
	calls      int64         // Redis commands sent during the phase
	mallocs    uint64        // heap allocations of the whole process during the phase
	firstErr   error         // the first error seen, for the log

	// exact is what an exact token bucket admits for the same arrivals
	// (accuracy rows only; see exactAdmissions), and replayed says it was
	// computed.
	exact    int64
	replayed bool
}

// throughput returns decisions per second.
func (r result) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// nsPerOp returns wall time per decision, as testing.B reports it for
// RunParallel: elapsed ÷ decisions, with every goroutine running.
func (r result) nsPerOp() float64 {
	if r.ops == 0 {
		return 0
	}
	return float64(r.elapsed.Nanoseconds()) / float64(r.ops)
}

// callsPer1k returns Redis calls per 1,000 decisions.
func (r result) callsPer1k() float64 {
	if r.ops == 0 {
		return 0
	}
	return float64(r.calls) * 1000 / float64(r.ops)
}

// allocsPerOp returns heap allocations per decision.
func (r result) allocsPerOp() float64 {
	if r.ops == 0 {
		return 0
	}
	return float64(r.mallocs) / float64(r.ops)
}

// bound returns burst + rate × elapsed: the most any limiter may admit
// over the phase.
func (r result) bound() float64 {
	lim := r.w.limit()
	return float64(lim.Burst) + lim.PerSecondRate()*r.elapsed.Seconds()
}

// ideal returns what a perfect limiter would have admitted: an exact token
// bucket replayed over the row's arrival times when they were recorded,
// else min(offered, bound). The two agree while demand never pauses; when
// the senders stall (a shared machine), the bucket overflows during the
// pause and an exact limiter admits less than the bound.
func (r result) ideal() float64 {
	if r.replayed {
		return float64(r.exact)
	}
	return math.Min(float64(r.ops), r.bound())
}

// overadmitPct returns how far admissions exceeded the ideal, in percent of
// the ideal; 0 when they did not.
func (r result) overadmitPct() float64 {
	id := r.ideal()
	if id <= 0 {
		return 0
	}
	return math.Max(0, float64(r.allowed)-id) * 100 / id
}

// falseDenyPct returns how far admissions fell short of the ideal, in
// percent of the ideal: requests denied that a perfect limiter would have
// admitted. 0 when they did not fall short.
func (r result) falseDenyPct() float64 {
	id := r.ideal()
	if id <= 0 {
		return 0
	}
	return math.Max(0, id-float64(r.allowed)) * 100 / id
}

// perKeyRate returns the requests per second one key saw at one instance.
func (r result) perKeyRate() float64 {
	return r.throughput() / float64(max(1, r.w.keys*r.w.instances))
}

// failures returns the errors and fallback decisions as "0" when there
// were none, else as "errors, fallbacks".
func (r result) failures() string {
	if r.errs == 0 && r.fallbacks == 0 {
		return "0"
	}
	return fmtInt(r.errs) + ", " + fmtInt(r.fallbacks)
}

// offeredRate returns the demand actually sent, in requests per second.
func (r result) offeredRate() float64 { return r.throughput() }

// exactAdmissions replays arrivals (ns, any order; sorted in place)
// through an exact token bucket of lim that starts full, and returns how
// many it admits: what a perfect limiter would have admitted of the same
// requests.
func exactAdmissions(arrivals []int64, lim ratelimit.Limit) int64 {
	slices.Sort(arrivals)
	var n int64
	for _, ok := range replayExact(lim, arrivals) {
		if ok {
			n++
		}
	}
	return n
}

// replayExact replays requests of one token arriving at the instants at
// (ns from any origin, in order) through algorithms.TokenBucketModel of
// lim, the reference model of the token bucket script, starting full, and
// reports which it admits.
func replayExact(lim ratelimit.Limit, at []int64) []bool {
	m := algorithms.TokenBucketModel{Limit: lim}
	var s algorithms.TokenBucketState
	ok := make([]bool, len(at))
	for i, t := range at {
		var d ratelimit.Decision
		// The model takes µs; the offset keeps every instant after the
		// zero state's TS (which means "full").
		s, d = m.Decide(s, 1e15+t/1e3, 1)
		ok[i] = d.Allowed
	}
	return ok
}
