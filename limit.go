package ratelimit

import (
	"fmt"
	"math"
	"time"
)

// Bounds on a [Limit]. They keep every quantity exact in the float64
// arithmetic that Redis's Lua uses: token counts below 2^40 and time in
// whole microseconds.
const (
	// MinPeriod is the shortest period a Limit may have.
	MinPeriod = time.Millisecond
	// MaxPeriod is the longest period a Limit may have.
	MaxPeriod = 366 * 24 * time.Hour
	// MaxRate is the largest Rate and Burst a Limit may have.
	MaxRate = 1 << 40
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

// Validate reports whether l can be enforced. The error wraps
// [ErrInvalidLimit] and names the field at fault.
func (l Limit) Validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("%w: rate %d must be positive", ErrInvalidLimit, l.Rate)
	case l.Rate > MaxRate:
		return fmt.Errorf("%w: rate %d exceeds %d", ErrInvalidLimit, l.Rate, MaxRate)
	case l.Period < MinPeriod:
		return fmt.Errorf("%w: period %v must be at least %v", ErrInvalidLimit, l.Period, MinPeriod)
	case l.Period > MaxPeriod:
		return fmt.Errorf("%w: period %v exceeds %v", ErrInvalidLimit, l.Period, MaxPeriod)
	case l.Period%time.Microsecond != 0:
		return fmt.Errorf("%w: period %v must be a whole number of microseconds", ErrInvalidLimit, l.Period)
	case l.Burst <= 0:
		return fmt.Errorf("%w: burst %d must be positive", ErrInvalidLimit, l.Burst)
	case l.Burst > MaxRate:
		return fmt.Errorf("%w: burst %d exceeds %d", ErrInvalidLimit, l.Burst, MaxRate)
	}
	return nil
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

// Interval returns the time it takes to earn one token: Period / Rate,
// rounded up to a whole nanosecond (so at least 1 ns for a valid limit).
// It is zero for an invalid limit.
func (l Limit) Interval() time.Duration { return l.DurationFor(1) }

// DurationFor returns the time it takes to earn n tokens: n × Period /
// Rate, rounded up to a whole nanosecond. It is zero for n <= 0 or an
// invalid limit.
func (l Limit) DurationFor(n int) time.Duration {
	if l.Rate <= 0 || l.Period <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(float64(n) * float64(l.Period) / float64(l.Rate)))
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
