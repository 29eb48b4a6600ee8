package algorithms

import "github.com/distributedratelimiter/ratelimit"

// This file holds the models of the quota operations: Peek (what a key has
// left, spending nothing) and, in settle.go's terms, Charge. Reset needs no
// model: it deletes the key, which is the zero state of every model.

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
