package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// bucket is an exact token bucket, as one process with one clock would
// keep it: it starts full and refills continuously.
type bucket struct {
	tokens, burst float64
	perNS         float64 // tokens per nanosecond
	last          time.Duration
}

func newBucket(l ratelimit.Limit) *bucket {
	return &bucket{tokens: float64(l.Burst), burst: float64(l.Burst), perNS: float64(l.Rate) / float64(l.Period)}
}

func (b *bucket) refill(at time.Duration) {
	if at > b.last {
		b.tokens = min(b.burst, b.tokens+float64(at-b.last)*b.perNS)
		b.last = at
	}
}

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
// for a contested tier-wide limit. A denial counts as false only if every
// limit had a token and a billionth: whether a token due at the very
// moment of the request was there depends on rounding alone (the scripts
// compute in microseconds and their own floating point).
func replay(p plan, evs [][]event) []idealResult {
	out := make([]idealResult, len(p.tiers))
	walk(p, evs, 0, func(c client, _ event, fits bool) bool {
		if fits {
			out[c.tier].admitted++
		}
		return fits
	})
	walk(p, evs, 1e-9, func(c client, ev event, fits bool) bool {
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
// whether every limit of the client has 1 + margin tokens then; if f
// returns true,
// each of those limits gives one (and may go below zero), as a request
// admitted by a tiers.Limiter takes from each of its limits.
func walk(p plan, evs [][]event, margin float64, f func(c client, ev event, fits bool) (take bool)) {
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
				b = newBucket(l.Budget)
				buckets[k] = b
			}
			b.refill(ev.at)
			fits = fits && b.tokens >= 1+margin
			need = append(need, b)
		}
		if f(c, ev, fits) {
			for _, b := range need {
				b.tokens--
			}
		}
	}
}
