package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// bucket is an exact token bucket, as one process with one clock would
// keep it: algorithms.TokenBucketModel, the reference model of the Redis
// scripts, which starts full and refills continuously.
type bucket struct {
	m algorithms.TokenBucketModel
	s algorithms.TokenBucketState
}

// us is the model's time of at: microseconds, as Redis's clock has them,
// from an origin far from zero (the model's zero state means full).
func us(at time.Duration) int64 { return 1e15 + at.Microseconds() }

// fits reports whether b has a whole token slack before at.
func (b *bucket) fits(at, slack time.Duration) bool {
	return b.m.Peek(b.s, us(at)-slack.Microseconds()).Allowed
}

// take spends one token of b at at, into debt (of at most one burst) if b
// has none: the real admissions are charged whatever the ideal says.
func (b *bucket) take(at time.Duration) { b.s, _ = b.m.Charge(b.s, us(at), 1) }

// idealResult compares one tier's requests with the ideal.
type idealResult struct {
	// admitted is how many requests exact buckets, fed every request in
	// time order, admit.
	admitted int64
	// falseDenials counts the requests denied although every limit, charged
	// with the requests actually admitted, had a token for them.
	falseDenials int64
	// causes splits falseDenials by the limit that denied and where it
	// decided.
	causes map[cause]int64
}

// cause is where a false denial came from: the limit that denied, and
// whether it asked Redis (ratelimit.SourceRedis) or answered from what the
// instance holds or remembers (ratelimit.SourceLocal).
type cause struct {
	limit string
	src   ratelimit.Source
}

// replay compares the events of every client with exact token buckets
// and returns one result per tier of p.
//
// The ideal count feeds each request to buckets that admit it if every
// limit has a token. False denials are counted against buckets charged
// with the real admissions instead: comparing request by request with the
// ideal's own choices would count as "false" every pair of near-
// simultaneous requests that Redis saw in the other order, which matters
// for a contested tier-wide limit. Time counts in whole microseconds, as
// in the scripts, and a denial is false only if every limit had its token
// a microsecond before the request: whether a token due at the very
// microsecond of a request is there depends on rounding alone.
func replay(p plan, evs [][]event) []idealResult {
	out := make([]idealResult, len(p.tiers))
	walk(p, evs, 0, func(c client, _ event, fits bool) bool {
		if fits {
			out[c.tier].admitted++
		}
		return fits
	})
	walk(p, evs, time.Microsecond, func(c client, ev event, fits bool) bool {
		if fits && ev.res == resDenied {
			r := &out[c.tier]
			r.falseDenials++
			if r.causes == nil {
				r.causes = map[cause]int64{}
			}
			k := cause{src: ev.src}
			if ev.by >= 0 && int(ev.by) < len(c.limits) {
				k.limit = c.limits[ev.by].Name
			}
			r.causes[k]++
		}
		return ev.res == resAdmitted
	})
	return out
}

// walk feeds every client's events, in time order across clients, through
// exact token buckets: one per limit and client for per-client limits, one
// per limit and tier for tier-wide ones. For each event it calls f with
// whether every limit of the client had a token slack before it; if f
// returns true,
// each of those limits gives one (and may go below zero), as a request
// admitted by a tiers.Limiter takes from each of its limits.
func walk(p plan, evs [][]event, slack time.Duration, f func(c client, ev event, fits bool) (take bool)) {
	type ref struct{ client, i int }
	var all []ref
	for c := range evs {
		for i := range evs[c] {
			all = append(all, ref{c, i})
		}
	}
	slices.SortStableFunc(all, func(a, b ref) int { return cmp.Compare(evs[a.client][a.i].at, evs[b.client][b.i].at) })

	type bkey struct {
		client int // -1 - tier for tier-wide limits
		limit  string
	}
	buckets := map[bkey]*bucket{}
	var need []*bucket
	for _, r := range all {
		c := p.clients[r.client]
		ev := evs[r.client][r.i]
		need = need[:0]
		fits := true
		for _, l := range c.limits {
			k := bkey{client: r.client, limit: l.Name}
			if l.Scope == tiers.PerTier {
				k.client = -1 - c.tier
			}
			b := buckets[k]
			if b == nil {
				b = &bucket{m: algorithms.TokenBucketModel{Limit: l.Budget}}
				buckets[k] = b
			}
			fits = fits && b.fits(ev.at, slack)
			need = append(need, b)
		}
		if f(c, ev, fits) {
			for _, b := range need {
				b.take(ev.at)
			}
		}
	}
}
