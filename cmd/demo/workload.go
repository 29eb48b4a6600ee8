package main

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Results of one check.
const (
	resAdmitted uint8 = iota
	resDenied
	resFailed // the check returned an error
)

// An event is one check of one client.
type event struct {
	at       time.Duration // since the run's start, at the middle of the check
	lat      time.Duration // how long the check took
	res      uint8
	fallback bool // decided by the failure policy: Redis did not answer
	// Of a denial: the index, in the client's limits, of the limit that
	// denied, and where that limit decided (ratelimit.SourceLocal: from
	// what the instance holds or remembers, without asking Redis).
	by  int8
	src ratelimit.Source
}

// tally counts decisions per tier while the load runs, for the live view.
// Safe for concurrent use.
type tally struct {
	admitted, denied, failed []atomic.Int64 // by tier index
}

func newTally(tiers int) *tally {
	return &tally{admitted: make([]atomic.Int64, tiers), denied: make([]atomic.Int64, tiers),
		failed: make([]atomic.Int64, tiers)}
}

// seed makes the workload the same in every mode: each worker's schedule
// depends only on it and on the worker's client and instance.
const seed = 7

// runLoad runs the plan's clients against the instances' limiters until d
// has passed or ctx is done, and returns each client's events in time
// order. Each client sends rate/len(insts) requests per second to each
// instance, from one goroutine per instance, at evenly spaced times with
// a random phase; every loop is bounded by its count and by d.
func runLoad(ctx context.Context, p plan, insts []*tiers.Limiter, d time.Duration, start time.Time, t *tally) [][]event {
	ctx, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()
	perWorker := make([][][]event, len(p.clients))
	var wg sync.WaitGroup
	for ci, c := range p.clients {
		perWorker[ci] = make([][]event, len(insts))
		every := time.Duration(float64(len(insts)) * float64(time.Second) / c.rate)
		if every <= 0 {
			continue
		}
		for ii, lim := range insts {
			rng := rand.New(rand.NewPCG(seed, uint64(ci)<<8|uint64(ii)))
			phase := time.Duration(rng.Int64N(int64(every)))
			maxN := int(math.Ceil(float64(d)/float64(every))) + 1
			wg.Go(func() {
				perWorker[ci][ii] = work(ctx, lim, c, every, phase, maxN, start, t)
			})
		}
	}
	wg.Wait()
	out := make([][]event, len(p.clients))
	for ci, ws := range perWorker {
		out[ci] = slices.Concat(ws...)
		slices.SortFunc(out[ci], func(a, b event) int { return cmp.Compare(a.at, b.at) })
	}
	return out
}

// work sends at most maxN requests of c to lim, one every interval after
// phase, until ctx is done. A worker that falls behind does not catch up
// in a burst: it skips the missed sends.
func work(ctx context.Context, lim *tiers.Limiter, c client, every, phase time.Duration, maxN int,
	start time.Time, t *tally) []event {
	evs := make([]event, 0, maxN)
	end := time.Duration(math.MaxInt64)
	if dl, ok := ctx.Deadline(); ok {
		end = dl.Sub(start)
	}
	timer := time.NewTimer(phase)
	defer timer.Stop()
	next := phase
	for range maxN {
		select {
		case <-ctx.Done():
			return evs
		case <-timer.C:
		}
		t0 := time.Since(start)
		res, err := lim.Check(ctx, c.key, c.ask, 1)
		t1 := time.Since(start)
		if err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) && t1 >= end) {
			return evs // the run ended during the check: not a failure
		}
		ev := eventOf(res, err, (t0+t1)/2)
		ev.lat = t1 - t0
		switch ev.res {
		case resFailed:
			t.failed[c.tier].Add(1)
		case resAdmitted:
			t.admitted[c.tier].Add(1)
		default:
			t.denied[c.tier].Add(1)
		}
		evs = append(evs, ev)
		next += every
		if next < t1 {
			next = t1 + every
		}
		timer.Reset(next - t1)
	}
	return evs
}

// eventOf is the event of a check at at that returned res and err: its
// result, whether the failure policy decided it, and of a denial, the
// limit that denied and where it decided.
func eventOf(res tiers.Result, err error, at time.Duration) event {
	ev := event{at: at, fallback: res.Decision.Source == ratelimit.SourceFallback, by: -1}
	switch {
	case err != nil:
		ev.res = resFailed
	case res.Decision.Allowed:
		ev.res = resAdmitted
	default:
		ev.res = resDenied
		ev.src = res.Decision.Source
		for i := len(res.Limits) - 1; i >= 0; i-- {
			if res.Limits[i].Checked {
				ev.by = int8(i)
				break
			}
		}
	}
	return ev
}
