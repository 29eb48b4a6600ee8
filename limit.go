package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// Bounds on a [Limit], checked by [Limit.Validate].
//
// Redis's Lua computes in float64, which holds every whole number up to
// 2^53 exactly. The bounds keep every quantity the scripts compute a whole
// number below 2^53 (times in microseconds, token counts, and the parts
// into which the scripts split the products that would be larger), every
// value they store or reply within Redis's 64-bit integers, and every time
// the limiters report within [time.Duration], without saturating.
const (
	// MinPeriod is the shortest period a Limit may have.
	MinPeriod = time.Millisecond

	// MaxPeriod is the longest period a Limit may have: 366 days, so that
	// a leap year fits. In microseconds it is below 2^45, the largest
	// divisor the scripts' exact arithmetic takes.
	MaxPeriod = 366 * 24 * time.Hour

	// MaxRate is the largest Rate and Burst a Limit may have: 2^40.
	MaxRate = 1 << 40

	// MaxRefill is the longest time a Limit may take to refill its whole
	// burst, Burst × Period / Rate: 100 years of 365 days. A key is never
	// further than that from full, so the instants the scripts store (now
	// plus at most MaxRefill) stay below 2^53 µs since 1970 until the year
	// 2155. Every wait a script replies is at most twice MaxRefill (for a
	// key spent under a limit that has since changed, or a token bucket in
	// debt): 200 years, below 2^53 µs (285 years) and below the largest
	// time.Duration (292 years). A key's TTL in milliseconds stays below
	// 10^14, which Redis takes from Lua as a whole number.
	MaxRefill = 100 * 365 * 24 * time.Hour
)

// A Limit allows Rate requests per Period on average, and at most Burst
// requests at once.
//
// The zero value is not a valid limit: use [PerSecond], [PerMinute],
// [PerHour] or [Per], which set Burst equal to Rate, and [Limit.WithBurst]
// to change it. Limits are plain values, safe to copy and to compare.
//
// How an algorithm reads a Limit:
//   - token bucket and GCRA refill Rate tokens per Period into a bucket that
//     holds at most Burst;
//   - fixed and sliding window admit at most Burst requests per window of
//     length Period (with the default Burst == Rate, that is Rate per
//     window).
type Limit struct {
	// Rate is the number of requests allowed per Period. It must be positive.
	Rate int
	// Period is the length of time over which Rate applies, for example one
	// second, one minute, 90 seconds or one day. It must be between
	// MinPeriod and MaxPeriod.
	Period time.Duration
	// Burst is the largest number of requests allowed at once, and the
	// largest n a single AllowN may ask for. It must be positive.
	Burst int
}

// Per returns a Limit of rate requests per period, with a burst of rate.
func Per(rate int, period time.Duration) Limit {
	return Limit{Rate: rate, Period: period, Burst: rate}
}

// PerSecond returns a Limit of rate requests per second, with a burst of rate.
func PerSecond(rate int) Limit { return Per(rate, time.Second) }

// PerMinute returns a Limit of rate requests per minute, with a burst of rate.
func PerMinute(rate int) Limit { return Per(rate, time.Minute) }

// PerHour returns a Limit of rate requests per hour, with a burst of rate.
func PerHour(rate int) Limit { return Per(rate, time.Hour) }

// WithBurst returns a copy of l with Burst set to burst.
func (l Limit) WithBurst(burst int) Limit {
	l.Burst = burst
	return l
}

// Validate reports whether l can be enforced: Rate and Burst between 1 and
// MaxRate, Period between MinPeriod and MaxPeriod in whole microseconds,
// and the time to refill the whole burst, Burst × Period / Rate, at most
// MaxRefill. Each problem is a [*LimitError], which matches
// [ErrInvalidLimit] and names the field at fault; the error is the one
// problem, or an [errors.Join] of one per field at fault (the refill time
// is checked only when the fields are valid).
func (l Limit) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &LimitError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case l.Rate <= 0:
		bad("rate", "must be positive, got %d", l.Rate)
	case l.Rate > MaxRate:
		bad("rate", "%d exceeds the maximum %d", l.Rate, MaxRate)
	}
	switch {
	case l.Period <= 0:
		bad("period", "must be positive, got %v", l.Period)
	case l.Period < MinPeriod:
		bad("period", "%v is shorter than the minimum %v", l.Period, MinPeriod)
	case l.Period > MaxPeriod:
		bad("period", "%v exceeds the maximum %v", l.Period, MaxPeriod)
	case l.Period%time.Microsecond != 0:
		bad("period", "%v must be a whole number of microseconds", l.Period)
	}
	switch {
	case l.Burst <= 0:
		bad("burst", "must be positive, got %d", l.Burst)
	case l.Burst > MaxRate:
		bad("burst", "%d exceeds the maximum %d", l.Burst, MaxRate)
	}
	if len(errs) == 0 && l.DurationFor(l.Burst) > MaxRefill {
		bad("", "refill time (burst × period / rate) %s exceeds the maximum %s: lower burst %d or period %v, or raise rate %d",
			years(l.refillSeconds()), years(MaxRefill.Seconds()), l.Burst, l.Period, l.Rate)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// A LimitError is one problem that [Limit.Validate] found with a Limit.
// It matches [ErrInvalidLimit].
type LimitError struct {
	// Field is the field at fault, "rate", "period" or "burst", or empty
	// for the refill time, which all three make.
	Field string
	// Msg describes the problem, such as "must be positive, got 0".
	Msg string
}

// Error returns "ratelimit: invalid limit: " followed by the field, if
// any, and Msg.
func (e *LimitError) Error() string {
	if e.Field == "" {
		return "ratelimit: invalid limit: " + e.Msg
	}
	return "ratelimit: invalid limit: " + e.Field + " " + e.Msg
}

// Is reports whether target is [ErrInvalidLimit].
func (e *LimitError) Is(target error) bool { return target == ErrInvalidLimit }

// refillSeconds returns Burst × Period / Rate in seconds, as a float64,
// which does not overflow where a Duration would.
func (l Limit) refillSeconds() float64 {
	return float64(l.Burst) * l.Period.Seconds() / float64(l.Rate)
}

// years formats a time of s seconds in years of 365 days.
func years(s float64) string {
	return strconv.FormatFloat(s/(365*24*3600), 'g', 4, 64) + " years"
}

// ValidateN reports whether n tokens can ever be granted under l at once:
// n must be positive and at most l.Burst. The error wraps [ErrInvalidN].
func (l Limit) ValidateN(n int) error {
	if n <= 0 {
		return fmt.Errorf("%w: n %d must be positive", ErrInvalidN, n)
	}
	if n > l.Burst {
		return fmt.Errorf("%w: n %d exceeds burst %d", ErrInvalidN, n, l.Burst)
	}
	return nil
}

// ValidateSettle reports whether a [Settler] can settle, under l, a request
// that reserved tokens and cost actual: reserved between 0 and l.Burst,
// actual between 0 and [MaxRate]. The error wraps [ErrInvalidN].
func (l Limit) ValidateSettle(reserved, actual int) error {
	if reserved < 0 || reserved > l.Burst {
		return fmt.Errorf("%w: reserved %d must be between 0 and the burst %d", ErrInvalidN, reserved, l.Burst)
	}
	if actual < 0 || actual > MaxRate {
		return fmt.Errorf("%w: actual %d must be between 0 and %d", ErrInvalidN, actual, MaxRate)
	}
	return nil
}

// Interval returns the time it takes to earn one token: Period / Rate,
// rounded up to a whole nanosecond (so at least 1 ns for a valid limit).
// It is zero for an invalid limit.
func (l Limit) Interval() time.Duration { return l.DurationFor(1) }

// DurationFor returns the time it takes to earn n tokens: n × Period /
// Rate, computed exactly and rounded up to a whole nanosecond. It is zero
// for n <= 0, Rate <= 0 or Period <= 0, and saturates at the largest
// Duration (about 292 years) instead of overflowing. For a valid limit and
// n at most Burst it is at most MaxRefill.
func (l Limit) DurationFor(n int) time.Duration {
	if l.Rate <= 0 || l.Period <= 0 || n <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(n), uint64(l.Period))
	rate := uint64(l.Rate)
	if hi >= rate {
		return math.MaxInt64 // the quotient needs more than 64 bits
	}
	q, r := bits.Div64(hi, lo, rate)
	if r > 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// PerSecondRate returns the average rate of l in requests per second.
func (l Limit) PerSecondRate() float64 {
	if l.Period <= 0 {
		return 0
	}
	return float64(l.Rate) / l.Period.Seconds()
}

// String returns a short form such as "100/1s burst 200".
func (l Limit) String() string {
	return fmt.Sprintf("%d/%v burst %d", l.Rate, l.Period, l.Burst)
}
