package lease

import (
	"math"
	"time"
)

// sizer holds the fixed inputs of lease sizing for one limit.
type sizer struct {
	ttl      time.Duration // the lease TTL: a lease must be spent well within it
	burst    int64
	maxLease int64         // max(1, floor(budget × burst)): the accuracy budget
	horizon  time.Duration // shortest span of demand one lease covers
	interval float64       // nanoseconds to earn one token
}

func newSizer(burst int, budget float64, horizon, ttl time.Duration, interval float64) sizer {
	maxLease := int64(math.Floor(budget * float64(burst)))
	if maxLease < 1 {
		maxLease = 1
	}
	return sizer{ttl: ttl, burst: int64(burst), maxLease: maxLease, horizon: horizon, interval: interval}
}

// span is the time one lease should last: the horizon, or four Redis round
// trips if that is longer, so a refill started at the low watermark lands
// before the batch runs out.
func (s sizer) span(rtt time.Duration) time.Duration {
	if 4*rtt > s.horizon {
		return 4 * rtt
	}
	return s.horizon
}

// fullSpanHorizons is how many spans one long lease lasts (see size): 1 s
// by default, so a key well under its
// limit asks Redis about once a second, not twenty times. It is never more
// than half the lease TTL, so a lease is spent well before the janitor
// takes unspent tokens back (at 3/4 of the TTL).
const fullSpanHorizons = 20

// fullSpan returns the time one long lease lasts.
func (s sizer) fullSpan(rtt time.Duration) time.Duration {
	return max(min(fullSpanHorizons*s.span(rtt), s.ttl/2), s.span(rtt))
}

// demand returns the tokens that rate (tokens/s) spends in span(rtt),
// rounded to the nearest and clamped to [1, maxLease].
func (s sizer) demand(rate float64, rtt time.Duration) int64 {
	want := int64(math.Round(rate * s.span(rtt).Seconds()))
	return min(max(want, 1), s.maxLease)
}

// size returns how many tokens to ask Redis for, n, and how many of them
// this refill needs, short (see algorithms.Charge.Short): never less than
// need (the tokens the caller asked for), never more than the burst.
// remote is what the Redis bucket had left at the last grant (-1: not
// known yet).
//
// short is the demand over one span. While the bucket is under half full
// it is at most the accuracy budget, shrinking in proportion to what the
// bucket has left, but not below what it refills during one round trip;
// and one token for a quiet key (see minBatch).
//
// n adds a long lease: the demand over fullSpan. The script grants beyond
// short only from a bucket at least a quarter full, and at most half of
// what it finds there (algorithms.Charge.Short): tokens taken from a
// bucket that far from empty deny no one, and a key under its limit then
// asks Redis about once a second, not twenty times; as demand nears the
// limit the bucket drains and leases shrink to short. A key whose accuracy budget is under two tokens never
// leases long: it gets the per-request limiter's decisions.
//
// rate is the key's local demand (see Limiter.refill).
func (s sizer) size(rate float64, rtt time.Duration, remote int64, need int64) (n, short int64) {
	short = s.demand(rate, rtt)
	if remote >= 0 && 2*remote < s.burst {
		if s.quiet(rate, rtt) {
			short = 1 // see minBatch
		} else {
			// In floating point: burst × budget × remote overflows
			// int64 for bursts near MaxRate.
			fill := int64(2 * float64(s.maxLease) * float64(remote) / float64(s.burst))
			short = min(short, max(1, fill, s.refilled(rtt)))
		}
	}
	short = min(max(short, need), s.burst)
	if s.maxLease < 2 {
		return short, short // single tokens: exact, as the per-request limiter
	}
	long := math.Round(rate * s.fullSpan(rtt).Seconds())
	return max(short, int64(min(long, float64(s.burst)))), short
}

// ahead returns how many tokens not yet earned a refill of a key whose
// Redis bucket is empty may ask for (see algorithms.Charge.Ahead): what
// the limit earns in two spans, or 0 when that is under two tokens or the
// key's demand is under two tokens a span (such a key stays exact, one
// token per request). All instances share that window of future tokens,
// first come, first served.
func (s sizer) ahead(rate float64, rtt time.Duration) int64 {
	window := min(s.refilled(2*s.span(rtt)), s.burst)
	if window < 2 || math.Round(rate*s.span(rtt).Seconds()) < 2 {
		return 0
	}
	return window
}

// refilled returns the whole tokens the bucket gains during d.
func (s sizer) refilled(d time.Duration) int64 {
	if s.interval <= 0 {
		return 0
	}
	return int64(float64(d) / s.interval)
}

// lowWatermark returns the local token count at which a background refill
// starts: zero for single-token leases (a key with little traffic goes to
// Redis on each request, exactly like the per-request limiter), else
// enough for two round trips of demand and at least an eighth of the
// lease, and always below the lease size.
func (s sizer) lowWatermark(lease int64, rate float64, rtt time.Duration) int64 {
	if lease <= 1 {
		return 0
	}
	low := max(int64(math.Ceil(rate*(2*rtt).Seconds())), lease/8)
	return min(low, lease-1)
}

// minBatch is the demand per span (tokens) from which a key batches its
// Redis calls when the bucket runs short: below it a key is quiet, and it
// is decided as the per-request limiter would decide it. A quiet key's
// denial lasts until Redis's next token is due, no longer, and its refunds
// go back to Redis unless the bucket there is at least half full: a token
// held at one instance, or a denial remembered past the moment a token is
// due, denies requests at the others that the per-request limiter would
// admit, and at a quiet key's demand batching saves too few calls to pay
// for that. With the default horizon (50 ms) a key is quiet below 320
// requests per second at an instance.
const minBatch = 16

// quiet reports whether a key with local demand rate (tokens/s) is quiet.
func (s sizer) quiet(rate float64, rtt time.Duration) bool {
	return rate*s.span(rtt).Seconds() < minBatch
}

// denialWait returns how long to remember a denial whose script said one
// token arrives after retry: until then for a quiet key; for a busy one
// long enough for the tokens of one demand-sized lease to accumulate, so
// that an instance over its limit asks Redis once per lease rather than
// once per token.
func (s sizer) denialWait(retry time.Duration, rate float64, rtt time.Duration) time.Duration {
	if s.quiet(rate, rtt) {
		return retry
	}
	k := s.demand(rate, rtt)
	return retry + time.Duration(float64(k-1)*s.interval)
}

// rateTau is the time constant of a key's demand estimate.
const rateTau = 250 * time.Millisecond

// ewma folds the demand observed over elapsed into the rate estimate
// (tokens/s), with a weight of 1 - exp(-elapsed/rateTau). Refills follow
// demand, so the gaps between samples are uneven: this weight makes a
// short gap count for little (a burst of decisions just before a refill
// adds about its number divided by rateTau, not its number divided by the
// gap), and a long one for nearly all.
func ewma(rate float64, demand int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return rate
	}
	alpha := 1 - math.Exp(-elapsed.Seconds()/rateTau.Seconds())
	return rate + alpha*(float64(demand)/elapsed.Seconds()-rate)
}

// unbiased returns the demand estimate rate of a key whose entry is age
// old without its bias towards zero, the estimate's value when the entry
// was made: rate / (1 - exp(-age/rateTau)), the weight the estimate gave
// to what it observed. For a new key that is its average demand since it
// was made; after a second it is within 2% of rate.
func unbiased(rate float64, age time.Duration) float64 {
	w := 1 - math.Exp(-age.Seconds()/rateTau.Seconds())
	if w <= 0 {
		return rate
	}
	return rate / w
}
