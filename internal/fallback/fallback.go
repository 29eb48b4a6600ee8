// Package fallback is the in-process token bucket of the FailLocal
// failure policy, shared by both limiters: while Redis cannot answer, each
// key is limited locally at this instance's share of the limit.
//
// A Bucket starts empty: a fallback never hands out a burst that Redis did
// not grant, so every instance that falls back at once adds nothing to the
// tokens it already held. It earns at the share it is given, on the
// limiter's monotonic clock, and remembers how many tokens it admitted, so
// that the caller can charge them to Redis when it answers again.
package fallback

import (
	"math"
	"time"
)

// A Bucket is one key's local token bucket. It is not safe for concurrent
// use: its owner guards it (the lease entry's mutex, the per-request
// limiter's map mutex). Create it with New; the zero value is an empty
// bucket made at time 0.
type Bucket struct {
	level float64 // tokens at at, possibly fractional
	at    int64   // ns on the owner's clock of the last update
	since int64   // ns: when the bucket was made, the start of the owed span
	seen  int64   // what Redis was last seen to hold when it was made; -1 for nothing
	owed  int64   // tokens admitted and not yet charged to Redis
}

// New returns an empty bucket made at now (ns on the owner's clock), when
// Redis was last seen to hold seen tokens for the key (-1 for never).
func New(now, seen int64) *Bucket { return &Bucket{at: now, since: now, seen: seen} }

// Take spends n tokens at now if the bucket holds them, after earning rate
// tokens per second since its last update, up to burst. It returns
// whether it admitted, and when it did not, how long until n tokens are
// there. rate must be positive; n above burst is never admitted.
func (b *Bucket) Take(now int64, n int, rate, burst float64) (ok bool, retry time.Duration) {
	if now > b.at {
		b.level = math.Min(b.level+rate*float64(now-b.at)/1e9, burst)
		b.at = now
	}
	fn := float64(n)
	if fn > burst {
		return false, saturate((fn - b.level) / rate)
	}
	if b.level < fn {
		return false, saturate((fn - b.level) / rate)
	}
	b.level -= fn
	b.owed += int64(n)
	return true, 0
}

// Drain empties the bucket at now, keeping what it owes: Redis answers
// again, and the next fallback must start from nothing, not from what this
// one earned meanwhile.
func (b *Bucket) Drain(now int64) { b.level, b.at = 0, now }

// Owed returns the tokens admitted and not yet charged, how long before
// now the bucket was made (the span they were admitted in) and what Redis
// was last seen to hold before it (-1 for nothing): what a charge needs to
// rebuild a bucket that Redis lost meanwhile.
func (b *Bucket) Owed(now int64) (tokens int64, over time.Duration, seen int64) {
	return b.owed, time.Duration(max(now-b.since, 0)), b.seen
}

// Charged records that tokens of the owed ones were charged to Redis.
func (b *Bucket) Charged(tokens int64) { b.owed = max(b.owed-tokens, 0) }

// Refund takes back n admitted tokens that were not used: they are no
// longer owed, and the bucket holds them again. It reports how many it took
// back: at most what is owed.
func (b *Bucket) Refund(n int64, burst float64) int64 {
	n = min(n, b.owed)
	b.owed -= n
	b.level = math.Min(b.level+float64(n), burst)
	return n
}

// saturate converts seconds into a Duration, rounded up to a whole
// nanosecond and saturating at the largest Duration.
func saturate(s float64) time.Duration {
	ns := math.Ceil(s * 1e9)
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(max(ns, 0))
}
