package algorithms

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// A CalendarPeriod is the length of the windows of a [CalendarWindow]: a
// calendar day, week or month in a time zone.
//
// The zero value is not a valid period.
type CalendarPeriod uint8

// The calendar periods.
const (
	// Day windows start at midnight. A day is 24 hours long, except
	// across a daylight-saving change, when it is 23 or 25 (in a few
	// zones, other lengths).
	Day CalendarPeriod = iota + 1
	// Week windows start at midnight on Monday (ISO 8601 weeks).
	Week
	// Month windows start at midnight on the 1st, and are 28 to 31 days
	// long.
	Month
)

// ParseCalendarPeriod returns the CalendarPeriod that [CalendarPeriod.String]
// spells s: "day", "week" or "month".
func ParseCalendarPeriod(s string) (CalendarPeriod, error) {
	for _, p := range []CalendarPeriod{Day, Week, Month} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("algorithms: unknown calendar period %q (want day, week or month)", s)
}

// String returns "day", "week" or "month".
func (p CalendarPeriod) String() string {
	switch p {
	case Day:
		return "day"
	case Week:
		return "week"
	case Month:
		return "month"
	}
	return fmt.Sprintf("CalendarPeriod(%d)", uint8(p))
}

// Nominal returns the Period of the [ratelimit.Limit] of a window of p: 24
// hours, 7 × 24 hours or 31 × 24 hours, whatever the length of a
// particular window; 0 for an invalid period.
func (p CalendarPeriod) Nominal() time.Duration {
	switch p {
	case Day:
		return 24 * time.Hour
	case Week:
		return 7 * 24 * time.Hour
	case Month:
		return 31 * 24 * time.Hour
	}
	return 0
}

// CalendarWindow is the [Algorithm] of calendar quotas, such as "1,000
// requests a day, reset at midnight in Europe/Paris" or "100,000 a month,
// reset on the 1st": a fixed window whose windows are the days, weeks or
// months of a time zone, each admitting at most Burst tokens. A denied
// request may retry when its window ends; the Redis key expires then too.
// Decisions report the true Remaining, and the time until the window ends
// as ResetAfter and, for a denial, RetryAfter.
//
// Build its Limit with [CalendarWindow.Limit]: Burst is the quota, and
// Period the period's [CalendarPeriod.Nominal] length, which [NewLimiter]
// requires (it describes the limit, as in the RateLimit-Policy header; the
// windows themselves are as long as the calendar makes them).
//
//	paris, err := time.LoadLocation("Europe/Paris")
//	daily := algorithms.CalendarWindow{Period: algorithms.Day, Location: paris}
//	l, err := algorithms.NewLimiter(rdb, daily.Limit(1000), algorithms.WithAlgorithm(daily))
//
// # Whose clock
//
// The Redis server's clock decides which window a request falls in, as in
// every other script. Lua in Redis has no time-zone database, so the
// calendar is computed in Go: the script receives the bounds of three
// consecutive windows, the one that holds the Limiter's clock
// ([WithClock]) and its neighbours, and picks the one that holds the
// server's time. Clocks a little apart, even across a boundary, so cost
// nothing. If none of the three holds it (the clocks are a window apart),
// the script says so and returns the server's time, and the Limiter
// computes the windows from that and runs it again: a second round trip,
// never a wrong window.
//
// A key remembers the bounds of its window. While that window lasts it
// stays the key's window, even if an instance with other time-zone rules
// (another tzdata version), or a new Period or Location, computes another:
// a change applies when the current window ends, and all instances count in
// one window.
//
// Name is "calendar_window" whatever the period and zone. CalendarWindow
// is not in [All]: it needs its fields. A CalendarWindow is a plain value,
// safe for concurrent use. Its zero value has no valid Period.
type CalendarWindow struct {
	// Period is the length of the windows.
	Period CalendarPeriod
	// Location is the time zone of the calendar. Nil means UTC.
	Location *time.Location

	clock ratelimit.Clock // the Limiter's (WithClock); nil: the system's
}

var _ Refunder = CalendarWindow{}

// Name returns "calendar_window".
func (CalendarWindow) Name() string { return "calendar_window" }

// String returns the period and the zone, such as "day in Europe/Paris".
func (c CalendarWindow) String() string {
	return c.Period.String() + " in " + c.location().String()
}

// Limit returns the Limit of a quota of quota tokens per window: Rate and
// Burst quota, Period the period's nominal length.
func (c CalendarWindow) Limit(quota int) ratelimit.Limit {
	return ratelimit.Per(quota, c.Period.Nominal())
}

// Validate reports whether c can enforce lim: c.Period must be valid, and
// lim valid with the Period c.Limit gives it. The error wraps
// [ratelimit.ErrInvalidLimit]. Rate is not used: a window admits Burst.
func (c CalendarWindow) Validate(lim ratelimit.Limit) error {
	if c.Period.Nominal() == 0 {
		return fmt.Errorf("%w: calendar window of %v: want Day, Week or Month", ratelimit.ErrInvalidLimit, c.Period)
	}
	if err := lim.Validate(); err != nil {
		return err
	}
	if lim.Period != c.Period.Nominal() {
		return fmt.Errorf("%w: a calendar window of a %v needs period %v, got %v (use CalendarWindow.Limit)",
			ratelimit.ErrInvalidLimit, c.Period, c.Period.Nominal(), lim.Period)
	}
	return nil
}

// prepare is called by NewLimiter: it validates lim and takes the
// Limiter's clock.
func (c CalendarWindow) prepare(lim ratelimit.Limit, clk ratelimit.Clock) (Algorithm, error) {
	if err := c.Validate(lim); err != nil {
		return nil, err
	}
	c.clock = clk
	return c, nil
}

func (c CalendarWindow) location() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

func (c CalendarWindow) now() time.Time {
	if c.clock == nil {
		return time.Now()
	}
	return c.clock.Now()
}

// Window returns the window that holds t: [start, end), in c's Location.
// Consecutive windows meet: the end of one is the start of the next. A
// window starts at the first instant at which the clocks of the zone read
// midnight of its first day or, when a daylight-saving change skips that
// midnight, at the instant the clocks skip it.
func (c CalendarWindow) Window(t time.Time) (start, end time.Time) {
	loc := c.location()
	y, m, d := t.In(loc).Date()
	first := c.first(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	start, end = startOfDay(first, loc), startOfDay(c.step(first, 1), loc)
	// The wall clock can read a date whose window has not begun, or has
	// ended, after it went back across midnight.
	for i := 0; !t.Before(end) && i < 3; i++ {
		first = c.step(first, 1)
		start, end = end, startOfDay(c.step(first, 1), loc)
	}
	for i := 0; t.Before(start) && i < 3; i++ {
		first = c.step(first, -1)
		start, end = startOfDay(first, loc), start
	}
	return start.In(loc), end.In(loc)
}

// first returns the first day of the window that holds the day date (a
// date at midnight UTC).
func (c CalendarWindow) first(date time.Time) time.Time {
	switch c.Period {
	case Week:
		return date.AddDate(0, 0, -(int(date.Weekday())+6)%7)
	case Month:
		return date.AddDate(0, 0, 1-date.Day())
	}
	return date
}

// step returns the first day of the window k windows after the one that
// starts on first.
func (c CalendarWindow) step(first time.Time, k int) time.Time {
	switch c.Period {
	case Week:
		return first.AddDate(0, 0, 7*k)
	case Month:
		return first.AddDate(0, k, 0)
	}
	return first.AddDate(0, 0, k)
}

// maxZoneOffset bounds the UTC offset of any zone in the tz database
// (the largest, local mean times of the 19th century, are under 16 h).
const maxZoneOffset = 18 * time.Hour

// startOfDay returns the first instant at which the wall clock of loc
// reads midnight of date (a date at midnight UTC) or, if it never does
// because a transition skips it, the instant of that transition.
func startOfDay(date time.Time, loc *time.Location) time.Time {
	wall := date.Unix() // the wall clock's reading, as seconds since 1970 in UTC
	offset := func(at int64) int64 {
		_, off := time.Unix(at, 0).In(loc).Zone()
		return int64(off)
	}
	// The instant lies within maxZoneOffset of wall. Walk the zone periods
	// that cover that span, in time order. ZoneBounds only finds the
	// transitions: what holds at an instant is looked up at that instant,
	// because past the zone's table ZoneBounds may also report bounds that
	// are not transitions, some of them wrong (Go 1.26 reports the end of
	// 2040, a leap year, a day early).
	span := int64(maxZoneOffset / time.Second)
	t := wall - span
	for range 64 {
		_, ze := time.Unix(t, 0).In(loc).ZoneBounds()
		end := int64(math.MaxInt64)
		if !ze.IsZero() {
			end = ze.Unix()
		}
		if end <= t {
			end = t + 3600 // a bound that does not advance: step over it
		}
		off := offset(t)
		if at := wall - off; t <= at && at < end && offset(at) == off {
			return time.Unix(at, 0) // this period's clock reads wall at at
		}
		if end > wall+span {
			break
		}
		if before, after := offset(end-1), offset(end); end+before <= wall && wall < end+after {
			return time.Unix(end, 0) // the clock jumps at end from before wall to after it
		}
		t = end
	}
	// Not reached for a zone of the tz database; a best effort otherwise.
	return time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, loc)
}

// bounds returns the starts of the window that holds t and of the windows
// before and after it, and the end of the one after, in µs since the Unix
// epoch: the boundary table of the calendar scripts.
func (c CalendarWindow) bounds(t time.Time) [4]int64 {
	start, end := c.Window(t)
	prev, _ := c.Window(start.Add(-time.Microsecond))
	_, next := c.Window(end)
	return [4]int64{prev.UnixMicro(), start.UnixMicro(), end.UnixMicro(), next.UnixMicro()}
}

// calendarAttempts bounds the runs of a calendar script: the first, from
// the Limiter's clock, and one from the server's time if the first's
// windows did not hold it, and one more in case a window ended in between.
const calendarAttempts = 3

// runCalendar runs s, a calendar script that takes the boundary table
// after the common ARGV, starting from c's clock and following the
// server's time when the script reports that no window of the table holds
// it. stale reports whether a reply says so, and returns the server's
// time.
func (c CalendarWindow) runCalendar(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int,
	stale func(reply) (int64, bool)) (reply, error) {
	now := c.now()
	for range calendarAttempts {
		b := c.bounds(now)
		r, err := parseReply(s.Run(ctx, rdb, []string{rkey}, lim.Rate, lim.Period.Microseconds(), lim.Burst, n, b[0], b[1], b[2], b[3]))
		if err != nil {
			return r, err
		}
		us, ok := stale(r)
		if !ok {
			return r, nil
		}
		now = time.UnixMicro(us)
	}
	return reply{}, fmt.Errorf("%w: no calendar window computed from the server's time %d µs holds it", ratelimit.ErrBadReply, now.UnixMicro())
}

// checkStale reads the stale reply of calendar_window.lua: {2, now, 0, 0}.
func checkStale(r reply) (int64, bool) { return r[1], r[0] == 2 }

// Check spends n tokens of the window that holds the server's time.
func (c CalendarWindow) Check(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) (ratelimit.Decision, error) {
	r, err := c.runCalendar(ctx, calendarWindowScript, rdb, rkey, lim, n, checkStale)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	if r[0] > 1 {
		return ratelimit.Decision{}, fmt.Errorf("%w: allowed flag is %d", ratelimit.ErrBadReply, r[0])
	}
	return r.decision(lim), nil
}

// Refund lowers the count of the key's current window by n, not below 0.
// Tokens spent in an earlier window cannot be given back.
func (c CalendarWindow) Refund(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := runRefund(ctx, calendarWindowRefundScript, rdb, rkey, lim, n)
	return err
}
