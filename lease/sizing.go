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

// fullSpanHorizons is how many spans one lease lasts while the Redis
// bucket is at least half full: 1 s by default, so a key well under its
// limit asks Redis about once a second, not twenty times. It is never more
// than half the lease TTL, so a lease is spent well before the janitor
// takes unspent tokens back (at 3/4 of the TTL).
const fullSpanHorizons = 20

// fullSpan returns the time one lease lasts while the Redis bucket is at
// least half full.
func (s sizer) fullSpan(rtt time.Duration) time.Duration {
	return max(min(fullSpanHorizons*s.span(rtt), s.ttl/2), s.span(rtt))
}

// demand returns the tokens that rate (tokens/s) spends in span(rtt),
// rounded to the nearest and clamped to [1, maxLease].
func (s sizer) demand(rate float64, rtt time.Duration) int64 {
	want := int64(math.Round(rate * s.span(rtt).Seconds()))
	return min(max(want, 1), s.maxLease)
}

// size returns how many tokens to ask Redis for, never less than need (the
// tokens the caller asked for), never more than the burst:
//   - while the Redis bucket is at least half full (remote is what it had
//     left at the last grant), the local demand over fullSpanHorizons
//     horizons, up to a quarter of what the bucket has left: tokens leased
//     from a bucket that far from empty deny no one;
//   - below that, one token for a quiet key (see minBatch);
//   - for a busy key, the demand over one span, at most the accuracy budget,
//     shrinking in proportion to what the bucket has left, but not below
//     what it refills during one round trip.
func (s sizer) size(rate float64, rtt time.Duration, remote int64, need int64) int64 {
	want := s.demand(rate, rtt)
	switch {
	case remote < 0:
	case 2*remote >= s.burst:
		long := int64(math.Round(rate * s.fullSpan(rtt).Seconds()))
		want = max(want, min(long, remote/4))
	case s.quiet(rate, rtt):
		want = 1 // see minBatch
	default:
		fillCap := max(1, 2*s.maxLease*remote/s.burst, s.refilled(rtt))
		want = min(want, fillCap)
	}
	return min(max(want, need), s.burst)
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
