package algorithms

import (
	"math"

	"github.com/distributedratelimiter/ratelimit"
)

// The window models: fixed and sliding windows, as model.go describes.

// floorDivMod returns floor(x / m) and x - floor(x / m) × m, for m > 0, as
// Lua's math.floor and % do.
func floorDivMod(x, m int64) (q, r int64) {
	q, r = x/m, x%m
	if r < 0 {
		q, r = q-1, r+m
	}
	return q, r
}

// window returns the number of the window that holds nowUS, windows of
// length period being aligned to the Unix epoch, and how far nowUS is into
// it, in µs.
func window(nowUS int64, period float64) (w, elapsed float64) {
	now := float64(nowUS)
	w = math.Floor(now / period)
	return w, now - float64(w*period)
}

// FixedWindowState is what a [FixedWindow] key holds.
//
// The zero value is a missing key, which has spent nothing, as is any state
// of an earlier window.
type FixedWindowState struct {
	// Window is the window number: the window covers [Window × Period,
	// (Window+1) × Period) since the Unix epoch.
	Window int64
	// Count is the number of tokens spent in the window.
	Count int64
}

// FixedWindowModel is the reference model of [FixedWindow]
// (lua/fixed_window.lua and lua/fixed_window_refund.lua): windows of Period
// aligned to the Unix epoch, each admitting at most Burst tokens. A denied
// request may retry when the window ends.
//
// Its methods are pure functions of their arguments. The zero value has an
// invalid Limit: set Limit, which must pass [ratelimit.Limit.Validate].
// A FixedWindowModel is a plain value, safe for concurrent use.
type FixedWindowModel struct {
	// Limit is the limit the model enforces.
	Limit ratelimit.Limit
}

// count returns the window holding nowUS, the time until it ends, and the
// tokens s has spent in it.
func (m FixedWindowModel) count(s FixedWindowState, nowUS int64) (w, reset, count float64) {
	_, period, _ := limitArgs(m.Limit)
	w, elapsed := window(nowUS, period)
	reset = period - elapsed
	if float64(s.Window) == w {
		count = float64(s.Count)
	}
	return w, reset, count
}

// Decide spends n tokens of the current window of s at nowUS if the window
// has room for them, as [FixedWindow]'s Check does, and returns the new
// state and the decision. A denial returns s unchanged. n must be between
// 1 and the burst.
func (m FixedWindowModel) Decide(s FixedWindowState, nowUS int64, n int) (FixedWindowState, ratelimit.Decision) {
	s, r := m.check(s, nowUS, n)
	return s, r.decision(m.Limit)
}

func (m FixedWindowModel) check(s FixedWindowState, nowUS int64, n int) (FixedWindowState, reply) {
	_, _, burst := limitArgs(m.Limit)
	w, reset, count := m.count(s, nowUS)
	if count+float64(n) > burst {
		remaining := burst - count
		if remaining < 0 {
			remaining = 0
		}
		return s, reply{0, int64(remaining), int64(reset), int64(reset)}
	}
	count = count + float64(n)
	return FixedWindowState{Window: int64(w), Count: int64(count)}, reply{1, int64(burst - count), 0, int64(reset)}
}

// Refund lowers the count of the current window of s at nowUS by n, but
// not below 0, as FixedWindow's Refund does, and returns the new state and
// the tokens the window has left. n must be positive.
func (m FixedWindowModel) Refund(s FixedWindowState, nowUS int64, n int) (FixedWindowState, int) {
	s, r := m.refund(s, nowUS, n)
	return s, int(r[0])
}

func (m FixedWindowModel) refund(s FixedWindowState, nowUS int64, n int) (FixedWindowState, reply) {
	_, _, burst := limitArgs(m.Limit)
	w, reset, count := m.count(s, nowUS)
	count = count - float64(n)
	if count < 0 {
		count = 0
	}
	remaining := burst - count
	if remaining < 0 {
		remaining = 0
	}
	if count > 0 {
		return FixedWindowState{Window: int64(w), Count: int64(count)}, reply{int64(remaining), 0, 0, int64(reset)}
	}
	return FixedWindowState{}, reply{int64(remaining), 0, 0, 0}
}

// SlidingWindowState is what a [SlidingWindow] key holds: the counts of a
// window and of the one before it.
//
// The zero value is a missing key, which has spent nothing, as is any state
// of a window that ended more than a Period ago.
type SlidingWindowState struct {
	// Window is the window number: the window covers [Window × Period,
	// (Window+1) × Period) since the Unix epoch.
	Window int64
	// Count is the number of tokens spent in window Window.
	Count int64
	// Prev is the number of tokens spent in window Window-1.
	Prev int64
}

// SlidingWindowModel is the reference model of [SlidingWindow]
// (lua/sliding_window.lua and lua/sliding_window_refund.lua). It estimates
// the tokens spent over the last Period as
//
//	prev × (1 − elapsed/Period) + cur
//
// where cur and prev are the counts of the current and previous windows and
// elapsed is how far now is into the current window, and admits n tokens
// while the estimate plus n stays at most Burst. It keeps the estimate
// multiplied by Period, so every quantity is a whole number, computed
// exactly for every limit that passes [ratelimit.Limit.Validate].
// ResetAfter is the time until the estimate is back to zero: the end of the
// next window while the current one has a count.
//
// Its methods are pure functions of their arguments. The zero value has an
// invalid Limit: set Limit, which must pass [ratelimit.Limit.Validate].
// A SlidingWindowModel is a plain value, safe for concurrent use.
type SlidingWindowModel struct {
	// Limit is the limit the model enforces.
	Limit ratelimit.Limit
}

// counts returns the window holding nowUS, how far nowUS is into it, and
// the tokens s spent in it and in the window before.
func (m SlidingWindowModel) counts(s SlidingWindowState, nowUS int64) (w, elapsed, cur, prev int64) {
	w, elapsed = floorDivMod(nowUS, m.Limit.Period.Microseconds())
	switch s.Window {
	case w:
		cur, prev = s.Count, s.Prev
	case w - 1:
		prev = s.Count
	}
	return w, elapsed, cur, prev
}

// used returns the estimate times the period: prev × (Period − elapsed) +
// cur × Period.
func (m SlidingWindowModel) used(elapsed, cur, prev int64) u128 {
	period := m.Limit.Period.Microseconds()
	return mul128(uint64(prev), uint64(period-elapsed)).add(mul128(uint64(cur), uint64(period)))
}

// reset returns the time until the estimate is back to zero.
func (m SlidingWindowModel) reset(elapsed, cur, prev int64) int64 {
	period := m.Limit.Period.Microseconds()
	switch {
	case cur > 0:
		return 2*period - elapsed
	case prev > 0:
		return period - elapsed
	}
	return 0
}

// Decide spends n tokens of s at nowUS if the estimate has room for them,
// as [SlidingWindow]'s Check does, and returns the new state and the
// decision. A denial returns s unchanged. n must be between 1 and the
// burst.
func (m SlidingWindowModel) Decide(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, ratelimit.Decision) {
	s, r := m.check(s, nowUS, n)
	return s, r.decision(m.Limit)
}

func (m SlidingWindowModel) check(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, reply) {
	period, burst, fn := m.Limit.Period.Microseconds(), int64(m.Limit.Burst), int64(n)
	w, elapsed, cur, prev := m.counts(s, nowUS)
	limit := mul128(uint64(burst), uint64(period))
	used := m.used(elapsed, cur, prev)
	after := used.add(mul128(uint64(fn), uint64(period)))
	if limit.less(after) {
		var retry int64
		if cur+fn <= burst {
			// prev decays until prev × (Period − e) <= (burst − n − cur) ×
			// Period; prev > 0, or the request would fit.
			q, _ := mul128(uint64(burst-fn-cur), uint64(period)).divMod(uint64(prev))
			retry = period - q - elapsed
		} else {
			// In the next window, cur × (Period − e) <= (burst − n) ×
			// Period; cur > burst − n >= 0.
			q, _ := mul128(uint64(burst-fn), uint64(period)).divMod(uint64(cur))
			retry = 2*period - q - elapsed
		}
		return s, reply{0, wholeLeft(limit, used, uint64(period)), retry, m.reset(elapsed, cur, prev)}
	}
	cur = cur + fn
	next := SlidingWindowState{Window: w, Count: cur, Prev: prev}
	return next, reply{1, wholeLeft(limit, after, uint64(period)), 0, m.reset(elapsed, cur, prev)}
}

// Refund lowers the count of the current window of s at nowUS by n, but
// not below 0, as SlidingWindow's Refund does, and returns the new state
// and the whole tokens the estimate then leaves. n must be positive.
func (m SlidingWindowModel) Refund(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, int) {
	s, r := m.refund(s, nowUS, n)
	return s, int(r[0])
}

func (m SlidingWindowModel) refund(s SlidingWindowState, nowUS int64, n int) (SlidingWindowState, reply) {
	period, burst := m.Limit.Period.Microseconds(), int64(m.Limit.Burst)
	w, elapsed, cur, prev := m.counts(s, nowUS)
	cur = max(cur-int64(n), 0)
	remaining := wholeLeft(mul128(uint64(burst), uint64(period)), m.used(elapsed, cur, prev), uint64(period))
	reset := m.reset(elapsed, cur, prev)
	next := SlidingWindowState{}
	if reset > 0 {
		next = SlidingWindowState{Window: w, Count: cur, Prev: prev}
	}
	return next, reply{remaining, 0, 0, reset}
}
