// Package faulttest holds what the fault-injection tests of the limiters
// share: a bounded load of goroutines that records every call, and checks
// that calls stayed within a deadline and followed the failure policy.
package faulttest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Call is one call made under load.
type Call struct {
	Start, End time.Time
	Key        string
	D          ratelimit.Decision
	Err        error
}

// Took returns how long the call took.
func (c Call) Took() time.Duration { return c.End.Sub(c.Start) }

// Fallback reports whether the failure policy made the decision.
func (c Call) Fallback() bool { return c.D.Source == ratelimit.SourceFallback }

// Load is a load of several goroutines, each calling in turn on keys,
// one call per gap, until stopped or at most maxCalls calls each.
type Load struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex // protects calls
	calls []Call
}

// MaxCalls bounds the calls of one worker of a Load.
const MaxCalls = 20_000

// StartLoad starts workers goroutines that call allow on keys in turn,
// one call per gap, until Finish or MaxCalls calls each.
func StartLoad(workers int, keys []string, gap time.Duration, allow func(ctx context.Context, key string) (ratelimit.Decision, error)) *Load {
	r := &Load{stop: make(chan struct{})}
	for w := range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			var mine []Call
			defer func() {
				r.mu.Lock()
				r.calls = append(r.calls, mine...)
				r.mu.Unlock()
			}()
			for i := 0; i < MaxCalls; i++ {
				select {
				case <-r.stop:
					return
				default:
				}
				key := keys[(w+i)%len(keys)]
				start := time.Now()
				d, err := allow(context.Background(), key)
				mine = append(mine, Call{Start: start, End: time.Now(), Key: key, D: d, Err: err})
				time.Sleep(gap)
			}
		}()
	}
	return r
}

// Finish stops the load and returns its calls in order of start.
func (r *Load) Finish() []Call {
	close(r.stop)
	r.wg.Wait()
	slices.SortFunc(r.calls, func(a, b Call) int { return a.Start.Compare(b.Start) })
	return r.calls
}

// Between returns the calls that started at or after from and ended at or
// before to.
func Between(calls []Call, from, to time.Time) []Call {
	var out []Call
	for _, c := range calls {
		if !c.Start.Before(from) && !c.End.After(to) {
			out = append(out, c)
		}
	}
	return out
}

// Latencies returns p50, p99 and max of the calls' durations.
func Latencies(calls []Call) (p50, p99, maxd time.Duration) {
	if len(calls) == 0 {
		return 0, 0, 0
	}
	ds := make([]time.Duration, len(calls))
	for i, c := range calls {
		ds[i] = c.Took()
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(int(q*float64(len(ds))), len(ds)-1)] }
	return at(0.50), at(0.99), ds[len(ds)-1]
}

// CheckBounded fails t for every call that took longer than bound.
func CheckBounded(t testing.TB, what string, calls []Call, bound time.Duration) {
	t.Helper()
	var late int
	var worst Call
	for _, c := range calls {
		if c.Took() > bound {
			late++
			if c.Took() > worst.Took() {
				worst = c
			}
		}
	}
	if late > 0 {
		t.Errorf("%s: %d of %d calls took longer than %v; the slowest took %v (%+v, %v)",
			what, late, len(calls), bound, worst.Took(), worst.D, worst.Err)
	}
}

// CheckPolicy checks that calls decided by the failure policy follow it.
// Calls that Redis, leased tokens or a remembered denial decided are
// skipped. share is the largest FailLocal rate of one instance; admissions
// by it are checked per key against what a token bucket of that rate,
// starting empty, admits over the time its calls span.
func CheckPolicy(t testing.TB, p ratelimit.FailurePolicy, calls []Call, share ratelimit.Limit) (fallbacks int) {
	t.Helper()
	type span struct {
		admitted    int
		first, last time.Time
	}
	local := map[string]*span{}
	for _, c := range calls {
		if !c.Fallback() {
			continue
		}
		fallbacks++
		switch p {
		case ratelimit.FailClosed:
			if c.D.Allowed || !errors.Is(c.Err, ratelimit.ErrStore) {
				t.Fatalf("fail closed: %+v, %v; want a denial and an error matching ErrStore", c.D, c.Err)
			}
		case ratelimit.FailOpen:
			if !c.D.Allowed || c.Err != nil {
				t.Fatalf("fail open: %+v, %v; want admitted with no error", c.D, c.Err)
			}
		case ratelimit.FailLocal:
			if c.Err != nil {
				t.Fatalf("fail local: %+v, %v; want no error", c.D, c.Err)
			}
			s := local[c.Key]
			if s == nil {
				s = &span{first: c.Start}
				local[c.Key] = s
			}
			s.last = c.End
			if c.D.Allowed {
				s.admitted++
			}
		}
	}
	for key, s := range local {
		// The local bucket starts empty; one token of slack for rounding.
		bound := int(float64(share.Rate)*s.last.Sub(s.first).Seconds()/share.Period.Seconds()) + 1
		if s.admitted > bound {
			t.Errorf("fail local: key %s admitted %d over %v, want at most %d (share %v)",
				key, s.admitted, s.last.Sub(s.first).Round(time.Millisecond), bound, share)
		}
		if s.admitted == 0 {
			t.Errorf("fail local: key %s admitted nothing while Redis was down", key)
		}
	}
	return fallbacks
}
