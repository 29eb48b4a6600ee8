package algorithms

import (
	"math"

	"github.com/distributedratelimiter/ratelimit"
)

// This file holds the models of the quota operations: Peek (what a key has
// left, spending nothing) and Charge (spending whatever it has left, for
// Limiter.SettleN). Reset needs no model: it deletes the key, which is the
// zero state of every model.

// Peek returns what the bucket s holds at nowUS, as [TokenBucket]'s Peek
// does: Allowed reports whether one token is available, RetryAfter is the
// time until one is (zero if Allowed), Remaining the whole tokens, and
// ResetAfter the time until the bucket is full. s is not changed.
func (m TokenBucketModel) Peek(s TokenBucketState, nowUS int64) ratelimit.Decision {
	return m.peek(s, nowUS).decision(m.Limit)
}

func (m TokenBucketModel) peek(s TokenBucketState, nowUS int64) reply {
	rate, period, burst := limitArgs(m.Limit)
	tokens := m.current(s, nowUS)
	reset := ceilInt((burst - tokens) * period / rate)
	if tokens < 1 {
		return reply{0, max(floorInt(tokens), 0), ceilInt((1 - tokens) * period / rate), reset}
	}
	return reply{1, floorInt(tokens), 0, reset}
}

// Peek returns what s has left at nowUS, as [GCRA]'s Peek does: the
// decision of a request for one token, without spending it.
func (m GCRAModel) Peek(s GCRAState, nowUS int64) ratelimit.Decision {
	return m.peek(s, nowUS).decision(m.Limit)
}

func (m GCRAModel) peek(s GCRAState, nowUS int64) reply {
	rate, period := uint64(m.Limit.Rate), uint64(m.Limit.Period.Microseconds())
	limit := mul128(uint64(m.Limit.Burst), period)
	ahead := m.ahead(s, nowUS)
	left := wholeLeft(limit, ahead, period)
	if after := ahead.add(u128{lo: period}); limit.less(after) {
		return reply{0, left, after.sub(limit).ceilDiv(rate), ahead.ceilDiv(rate)}
	}
	return reply{1, left, 0, ahead.ceilDiv(rate)}
}

// Peek returns what the current window of s has left at nowUS, as
// [FixedWindow]'s Peek does. ResetAfter is the end of the window, or zero
// if the window has spent nothing.
func (m FixedWindowModel) Peek(s FixedWindowState, nowUS int64) ratelimit.Decision {
	return m.peek(s, nowUS).decision(m.Limit)
}

func (m FixedWindowModel) peek(s FixedWindowState, nowUS int64) reply {
	_, _, burst := limitArgs(m.Limit)
	_, reset, count := m.count(s, nowUS)
	switch remaining := burst - count; {
	case count == 0:
		return reply{1, int64(burst), 0, 0}
	case remaining < 1:
		return reply{0, 0, int64(reset), int64(reset)}
	default:
		return reply{1, int64(remaining), 0, int64(reset)}
	}
}

// Peek returns what s has left under the estimate at nowUS, as
// [SlidingWindow]'s Peek does: the decision of a request for one token,
// without spending it.
func (m SlidingWindowModel) Peek(s SlidingWindowState, nowUS int64) ratelimit.Decision {
	return m.peek(s, nowUS).decision(m.Limit)
}

func (m SlidingWindowModel) peek(s SlidingWindowState, nowUS int64) reply {
	period, burst := m.Limit.Period.Microseconds(), int64(m.Limit.Burst)
	_, elapsed, cur, prev := m.counts(s, nowUS)
	limit := mul128(uint64(burst), uint64(period))
	used := m.used(elapsed, cur, prev)
	left := wholeLeft(limit, used, uint64(period))
	reset := m.reset(elapsed, cur, prev)
	if !limit.less(used.add(u128{lo: uint64(period)})) {
		return reply{1, left, 0, reset}
	}
	var retry int64
	if cur+1 <= burst {
		q, _ := mul128(uint64(burst-1-cur), uint64(period)).divMod(uint64(prev))
		retry = period - q - elapsed
	} else {
		q, _ := mul128(uint64(burst-1), uint64(period)).divMod(uint64(cur))
		retry = 2*period - q - elapsed
	}
	return reply{0, left, retry, reset}
}

// Peek returns what the window of s has left at nowUS, as
// [CalendarWindow]'s Peek does. ResetAfter is the end of the window, or
// zero if it has spent nothing.
func (m CalendarWindowModel) Peek(s CalendarWindowState, nowUS int64) ratelimit.Decision {
	return m.peek(s, nowUS).decision(m.Limit)
}

func (m CalendarWindowModel) peek(s CalendarWindowState, nowUS int64) reply {
	burst := int64(m.Limit.Burst)
	if !s.holds(nowUS) || s.Count == 0 {
		return reply{1, burst, 0, 0}
	}
	reset := s.End - nowUS
	if remaining := burst - s.Count; remaining >= 1 {
		return reply{1, remaining, 0, reset}
	}
	return reply{0, 0, reset, reset}
}

// maxRefillTicks returns ratelimit.MaxRefill in ticks of 1/Rate µs.
func (m GCRAModel) maxRefillTicks() u128 {
	return mul128(uint64(ratelimit.MaxRefill.Microseconds()), uint64(m.Limit.Rate))
}

// Charge spends n tokens of the bucket s at nowUS whatever it holds, as
// [TokenBucket]'s Charge does: down to -Burst at the lowest, never raising
// a bucket already lower. It returns the new state and the whole tokens
// left (0 in debt). n must be positive; above 2 × Burst it counts as that.
func (m TokenBucketModel) Charge(s TokenBucketState, nowUS int64, n int) (TokenBucketState, int) {
	s, r := m.charge(s, nowUS, n)
	return s, int(r[0])
}

func (m TokenBucketModel) charge(s TokenBucketState, nowUS int64, n int) (TokenBucketState, reply) {
	_, _, burst := limitArgs(m.Limit)
	n = chargeTokens(m.Limit, n)
	tokens := m.current(s, nowUS)
	tokens = math.Max(tokens-float64(n), math.Min(tokens, -burst))
	next, reset := m.store(tokens, nowUS)
	return next, reply{max(floorInt(tokens), 0), 0, 0, reset}
}

// Charge moves the TAT of s n emission intervals later at nowUS, as
// [GCRA]'s Charge does: to 2 × Burst intervals ahead of now at the most,
// and to ratelimit.MaxRefill, never back. It returns the new state and the
// whole tokens left. n must be positive; above 2 × Burst it counts as
// that.
func (m GCRAModel) Charge(s GCRAState, nowUS int64, n int) (GCRAState, int) {
	s, r := m.charge(s, nowUS, n)
	return s, int(r[0])
}

func (m GCRAModel) charge(s GCRAState, nowUS int64, n int) (GCRAState, reply) {
	rate, period := uint64(m.Limit.Rate), uint64(m.Limit.Period.Microseconds())
	n = chargeTokens(m.Limit, n)
	limit := mul128(uint64(m.Limit.Burst), period)
	ceiling := mul128(2*uint64(m.Limit.Burst), period)
	if mr := m.maxRefillTicks(); mr.less(ceiling) {
		ceiling = mr
	}
	ahead, cost := m.ahead(s, nowUS), mul128(uint64(n), period)
	after := ahead
	switch {
	case !ahead.less(ceiling): // already as far ahead: unchanged
	case ceiling.sub(ahead).less(cost):
		after = ceiling
	default:
		after = ahead.add(cost)
	}
	return m.store(after, nowUS), reply{wholeLeft(limit, after, period), 0, 0, after.ceilDiv(rate)}
}

// Charge adds n tokens to the count of the current window of s at nowUS,
// as [FixedWindow]'s Charge does: up to 2 × Burst, never lowering it. It
// returns the new state and the tokens the window has left (0 in debt).
// n must be positive; above 2 × Burst it counts as that.
func (m FixedWindowModel) Charge(s FixedWindowState, nowUS int64, n int) (FixedWindowState, int) {
	s, r := m.charge(s, nowUS, n)
	return s, int(r[0])
}

func (m FixedWindowModel) charge(s FixedWindowState, nowUS int64, n int) (FixedWindowState, reply) {
	_, _, burst := limitArgs(m.Limit)
	n = chargeTokens(m.Limit, n)
	w, reset, count := m.count(s, nowUS)
	if count < 2*burst {
		count = math.Min(count+float64(n), 2*burst)
	}
	return FixedWindowState{Window: int64(w), Count: int64(count)}, reply{int64(math.Max(burst-count, 0)), 0, 0, int64(reset)}
}

// Charge adds n tokens to the count of the current window of s at nowUS,
// as [SlidingWindow]'s Charge does: up to 2 × Burst, never lowering it. It
// returns the new state and the whole tokens the estimate leaves (0 in
// debt). n must be positive; above 2 × Burst it counts as that.
func (m SlidingWindowModel) Charge(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, int) {
	s, r := m.charge(s, nowUS, n)
	return s, int(r[0])
}

func (m SlidingWindowModel) charge(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, reply) {
	period, burst := m.Limit.Period.Microseconds(), int64(m.Limit.Burst)
	n = chargeTokens(m.Limit, n)
	w, elapsed, cur, prev := m.counts(s, nowUS)
	if cur < 2*burst {
		cur = min(cur+int64(n), 2*burst)
	}
	left := wholeLeft(mul128(uint64(burst), uint64(period)), m.used(elapsed, cur, prev), uint64(period))
	return SlidingWindowState{Window: w, Count: cur, Prev: prev}, reply{left, 0, 0, 2*period - elapsed}
}

// Charge adds n tokens to the count of the window of s at nowUS, as
// [CalendarWindow]'s Charge does: up to 2 × Burst, never lowering it. It
// returns the new state and the tokens the window has left (0 in debt).
// n must be positive; above 2 × Burst it counts as that.
func (m CalendarWindowModel) Charge(s CalendarWindowState, nowUS int64, n int) (CalendarWindowState, int) {
	s, r := m.charge(s, nowUS, n, m.table(nowUS))
	return s, int(r[0])
}

// charge mirrors calendar_window_charge.lua, with its boundary table b.
func (m CalendarWindowModel) charge(s CalendarWindowState, nowUS int64, n int, b [4]int64) (CalendarWindowState, reply) {
	burst := int64(m.Limit.Burst)
	n = chargeTokens(m.Limit, n)
	w, ok := m.window(s, nowUS, b)
	if !ok {
		return s, reply{0, 2, nowUS, 0}
	}
	if w.Count < 2*burst {
		w.Count = min(w.Count+int64(n), 2*burst)
	}
	return w, reply{max(burst-w.Count, 0), 0, 0, w.End - nowUS}
}
