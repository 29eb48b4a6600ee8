package lease

import (
	"sync/atomic"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/stripe"
)

// counters are the limiter's running totals, kept off the hit path: each is
// touched only by refills, the janitor, the slow path or a denial. The hit
// path's admissions are not counted as they happen (an atomic add on every
// hit would cost as much as the rest of it): Stats derives them from the
// tokens that left the counters (see hitAdmissions).
type counters struct {
	leased, returned, expired         atomic.Int64
	refills, prefetches, refillErrors atomic.Int64
	waits, redisCalls                 atomic.Int64
	evicted, overflow, returnErrors   atomic.Int64
	removed, refunded                 atomic.Int64 // tokens out of / back into local counters
	charged                           atomic.Int64 // FailLocal admissions charged to Redis

	// Admissions off the hit path, by ratelimit.Source (local or redis).
	allowedSlow [2]atomic.Int64
	// decided counts denials and the failure policy's decisions, which
	// every core may make at once for one key.
	decided tally
	// Tokens taken from the counters off the hit path (its admissions
	// and SettleN's extra cost), and n-1 for each hit-path admission of
	// n > 1 tokens: what hitAdmissions subtracts from all tokens taken.
	slowTaken atomic.Int64
	// hitExtra is written by hit-path admissions of n > 1 tokens, from
	// every core: on a cache line of its own, away from the counters
	// above.
	_        [64]byte
	hitExtra atomic.Int64
	_        [56]byte
}

// tally counts decisions that callers on every core may make at once (a
// key over its limit is denied on all of them; while Redis is down, every
// request is the failure policy's), in cells picked per goroutine
// (internal/stripe): one shared counter would cost each decision a cache
// line moved between cores.
type tally struct {
	cells []tallyCell
	shift uint
}

// tallyCell is one cell of a tally, alone on its cache lines.
type tallyCell struct {
	denied   [2]atomic.Int64 // denials off the hit path, by ratelimit.Source: local, redis
	fallback [2]atomic.Int64 // decisions by the failure policy: denied, allowed
	_        [128 - 4*8]byte
}

func newTally() tally {
	n, shift := stripe.Cells()
	return tally{cells: make([]tallyCell, n), shift: shift}
}

// cell returns the calling goroutine's cell.
func (t *tally) cell() *tallyCell { return &t.cells[stripe.Pick(t.shift, 0)] }

// denied counts a denial off the hit path, decided at src.
func (t *tally) denied(src ratelimit.Source) { t.cell().denied[src].Add(1) }

// fellBack counts a decision of the failure policy.
func (t *tally) fellBack(allowed bool) { t.cell().fallback[b2i(allowed)].Add(1) }

// sum returns the counts over every cell.
func (t *tally) sum() (denied, fallback [2]int64) {
	for i := range t.cells {
		c := &t.cells[i]
		for j := range 2 {
			denied[j] += c.denied[j].Load()
			fallback[j] += c.fallback[j].Load()
		}
	}
	return denied, fallback
}

// tookSlow counts an admission of n tokens taken from a counter off the
// hit path, decided at src.
func (c *counters) tookSlow(src ratelimit.Source, n int) {
	c.allowedSlow[src].Add(1)
	c.slowTaken.Add(int64(n))
}

// hitAdmissions returns the admissions made on the hit path from the tokens
// taken from the counters, taken (leased + refunded - removed - held): each
// was a hit of n tokens, counted as one admission and n-1 extra tokens, or
// a take off the hit path. Exact while no request is in flight; a snapshot
// taken during one may be off by the tokens it moves meanwhile.
func (c *counters) hitAdmissions(taken int64) int64 {
	return max(taken-c.slowTaken.Load()-c.hitExtra.Load(), 0)
}

// Stats is a snapshot of a [Limiter]'s running totals since New, for
// telemetry and tests. Tokens move Redis → leased → served, or back to
// Redis (returned); a token is served only after Redis leased it.
type Stats struct {
	// TokensLeased is the number of tokens Redis granted to this instance.
	TokensLeased int64
	// TokensServed is the number of leased tokens spent by admitted
	// requests (net of refunds).
	TokensServed int64
	// TokensHeld is the number of leased tokens not yet spent or returned.
	TokensHeld int64
	// TokensReturned is the number of tokens returned to Redis
	// successfully (expired, evicted, closed, or refused by a full key cap).
	TokensReturned int64
	// TokensExpired is the number of tokens taken back because their
	// lease outlived the lease TTL.
	TokensExpired int64
	// Refills counts lease calls made to Redis; RefillErrors counts
	// refills that failed, including those the open circuit breaker
	// refused without a call; Prefetches counts background refills started
	// (at the low watermark, by a degraded key's probe, for tokens granted
	// ahead) or joined by a waiting caller, whether or not they called
	// Redis.
	Refills, RefillErrors, Prefetches int64
	// Waits counts callers that found their key's tokens spent and waited
	// for a refill.
	Waits int64
	// Decisions, by outcome and by where they were made (the
	// ratelimit.Source of their Decision): AllowedLocal counts admissions
	// served from leased tokens, AllowedRedis those that waited for a
	// refill or, beyond the key cap, a direct Redis call; DeniedLocal
	// counts denials answered from a remembered Redis denial, with no
	// Redis call, DeniedRedis denials that Redis gave to this very
	// request; AllowedFallback and DeniedFallback count the decisions of
	// the failure policy, whichever it is, because Redis could not
	// answer.
	AllowedLocal, AllowedRedis, AllowedFallback int64
	DeniedLocal, DeniedRedis, DeniedFallback    int64
	// RedisCalls counts every script run: refills, returns and checks
	// of keys beyond the key cap.
	RedisCalls int64
	// Keys is the number of keys tracked now; Evicted counts keys evicted
	// for idleness, and Overflow requests checked without an entry because
	// the key cap was reached.
	Keys, Evicted, Overflow int64
	// ReturnErrors counts returns of unspent tokens that could not reach
	// Redis; their tokens come back by the bucket's own refill instead.
	ReturnErrors int64
	// Breaker is the state of the circuit breaker: "closed", "open" or
	// "half-open" ("closed" when it is turned off).
	Breaker string
}

// Stats returns a snapshot of the limiter's totals. It walks the tracked
// keys to count the tokens held, so it costs O(keys); call it from a metrics
// callback, not per request.
func (l *Limiter) Stats() Stats {
	var held int64
	l.entries.Range(func(e *entry) bool {
		held += e.holding()
		return true
	})
	denied, fallback := l.stats.decided.sum()
	s := Stats{
		TokensLeased:   l.stats.leased.Load(),
		TokensHeld:     held,
		TokensReturned: l.stats.returned.Load(),
		TokensExpired:  l.stats.expired.Load(),
		Refills:        l.stats.refills.Load(),
		RefillErrors:   l.stats.refillErrors.Load(),
		Prefetches:     l.stats.prefetches.Load(),
		Waits:          l.stats.waits.Load(),
		AllowedRedis:   l.stats.allowedSlow[ratelimit.SourceRedis].Load(),
		DeniedLocal:    denied[ratelimit.SourceLocal],
		DeniedRedis:    denied[ratelimit.SourceRedis],
		RedisCalls:     l.stats.redisCalls.Load(),
		// A creator over the cap holds a place for a moment before it
		// gives it back; the entries themselves never exceed the cap.
		Keys:         min(l.count.Load(), int64(l.cfg.maxKeys)),
		Evicted:      l.stats.evicted.Load(),
		Overflow:     l.stats.overflow.Load(),
		ReturnErrors: l.stats.returnErrors.Load(),
		Breaker:      l.breaker.State().String(),
	}
	s.AllowedFallback = fallback[1]
	s.DeniedFallback = fallback[0]
	s.TokensServed = s.TokensLeased + l.stats.refunded.Load() - l.stats.removed.Load() - held
	s.AllowedLocal = l.stats.hitAdmissions(s.TokensServed) + l.stats.allowedSlow[ratelimit.SourceLocal].Load()
	return s
}
