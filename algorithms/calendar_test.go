package algorithms

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zones, whatever the machine has installed

	"github.com/distributedratelimiter/ratelimit"
)

// zone loads the IANA zone name or fails t.
func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// wall parses "2006-01-02 15:04:05 -07:00", a wall-clock reading with its
// UTC offset, so that each case says which of two equal readings it means.
func wall(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04:05 -07:00", s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCalendarWindow checks windows across daylight-saving changes, month
// ends and leap years, in zones that change at 02:00 (Europe/Paris), at
// midnight (America/Havana, America/Santiago, America/Sao_Paulo in 2018),
// by 30 minutes (Australia/Lord_Howe), that skipped a whole day
// (Pacific/Apia, 2011-12-30), and with a half-hour offset (Asia/Kolkata).
func TestCalendarWindow(t *testing.T) {
	cases := []struct {
		zone       string // "" is a nil Location: UTC
		period     CalendarPeriod
		at         string
		start, end string
		length     time.Duration
	}{
		{"", Day, "2025-06-15 13:00:00 +00:00", "2025-06-15 00:00:00 +00:00", "2025-06-16 00:00:00 +00:00", 24 * time.Hour},
		{"Europe/Paris", Day, "2025-06-15 13:00:00 +02:00", "2025-06-15 00:00:00 +02:00", "2025-06-16 00:00:00 +02:00", 24 * time.Hour},
		// Spring forward: 02:00 is 03:00, the day has 23 hours.
		{"Europe/Paris", Day, "2025-03-30 01:59:59 +01:00", "2025-03-30 00:00:00 +01:00", "2025-03-31 00:00:00 +02:00", 23 * time.Hour},
		{"Europe/Paris", Day, "2025-03-30 03:00:00 +02:00", "2025-03-30 00:00:00 +01:00", "2025-03-31 00:00:00 +02:00", 23 * time.Hour},
		// Fall back: 03:00 is 02:00 again, the day has 25 hours; both
		// 02:30s are in it.
		{"Europe/Paris", Day, "2025-10-26 02:30:00 +02:00", "2025-10-26 00:00:00 +02:00", "2025-10-27 00:00:00 +01:00", 25 * time.Hour},
		{"Europe/Paris", Day, "2025-10-26 02:30:00 +01:00", "2025-10-26 00:00:00 +02:00", "2025-10-27 00:00:00 +01:00", 25 * time.Hour},
		{"Europe/Paris", Day, "2025-10-26 23:59:59 +01:00", "2025-10-26 00:00:00 +02:00", "2025-10-27 00:00:00 +01:00", 25 * time.Hour},
		{"Europe/Paris", Day, "2025-10-27 00:00:00 +01:00", "2025-10-27 00:00:00 +01:00", "2025-10-28 00:00:00 +01:00", 24 * time.Hour},
		// Weeks start on Monday; the one with the spring change is an hour
		// short.
		{"Europe/Paris", Week, "2025-03-30 12:00:00 +02:00", "2025-03-24 00:00:00 +01:00", "2025-03-31 00:00:00 +02:00", 7*24*time.Hour - time.Hour},
		{"Europe/Paris", Week, "2025-03-31 00:00:00 +02:00", "2025-03-31 00:00:00 +02:00", "2025-04-07 00:00:00 +02:00", 7 * 24 * time.Hour},
		{"", Week, "2026-01-01 00:00:00 +00:00", "2025-12-29 00:00:00 +00:00", "2026-01-05 00:00:00 +00:00", 7 * 24 * time.Hour},
		// Months of 28, 29, 30 and 31 days, with and without a change.
		{"Europe/Paris", Month, "2025-02-28 23:59:59 +01:00", "2025-02-01 00:00:00 +01:00", "2025-03-01 00:00:00 +01:00", 28 * 24 * time.Hour},
		{"Europe/Paris", Month, "2024-02-29 12:00:00 +01:00", "2024-02-01 00:00:00 +01:00", "2024-03-01 00:00:00 +01:00", 29 * 24 * time.Hour},
		{"Europe/Paris", Month, "2025-04-30 23:59:59 +02:00", "2025-04-01 00:00:00 +02:00", "2025-05-01 00:00:00 +02:00", 30 * 24 * time.Hour},
		{"Europe/Paris", Month, "2025-01-01 00:00:00 +01:00", "2025-01-01 00:00:00 +01:00", "2025-02-01 00:00:00 +01:00", 31 * 24 * time.Hour},
		{"Europe/Paris", Month, "2025-03-15 12:00:00 +01:00", "2025-03-01 00:00:00 +01:00", "2025-04-01 00:00:00 +02:00", 31*24*time.Hour - time.Hour},
		{"Europe/Paris", Month, "2025-10-31 23:59:59 +01:00", "2025-10-01 00:00:00 +02:00", "2025-11-01 00:00:00 +01:00", 31*24*time.Hour + time.Hour},
		{"Europe/Paris", Month, "2025-12-31 23:59:59 +01:00", "2025-12-01 00:00:00 +01:00", "2026-01-01 00:00:00 +01:00", 31 * 24 * time.Hour},
		// Beyond its table, Go's ZoneBounds misplaces the end of a leap
		// year (2040) by a day.
		{"Europe/Paris", Day, "2040-12-31 12:00:00 +01:00", "2040-12-31 00:00:00 +01:00", "2041-01-01 00:00:00 +01:00", 24 * time.Hour},
		{"Europe/Paris", Day, "2041-01-01 00:00:00 +01:00", "2041-01-01 00:00:00 +01:00", "2041-01-02 00:00:00 +01:00", 24 * time.Hour},
		{"Europe/Paris", Month, "2041-01-01 00:00:00 +01:00", "2041-01-01 00:00:00 +01:00", "2041-02-01 00:00:00 +01:00", 31 * 24 * time.Hour},
		{"", Month, "2100-02-28 12:00:00 +00:00", "2100-02-01 00:00:00 +00:00", "2100-03-01 00:00:00 +00:00", 28 * 24 * time.Hour},
		// Cuba springs forward at midnight: 2025-03-09 starts at 01:00.
		{"America/Havana", Day, "2025-03-08 23:59:59 -05:00", "2025-03-08 00:00:00 -05:00", "2025-03-09 01:00:00 -04:00", 24 * time.Hour},
		{"America/Havana", Day, "2025-03-09 01:00:00 -04:00", "2025-03-09 01:00:00 -04:00", "2025-03-10 00:00:00 -04:00", 23 * time.Hour},
		{"America/Havana", Month, "2025-03-09 01:00:00 -04:00", "2025-03-01 00:00:00 -05:00", "2025-04-01 00:00:00 -04:00", 31*24*time.Hour - time.Hour},
		// Chile falls back at midnight: 2025-04-05 ends at 24:00 -03,
		// which is 23:00 -04, and lasts until midnight -04.
		{"America/Santiago", Day, "2025-04-05 23:30:00 -03:00", "2025-04-05 00:00:00 -03:00", "2025-04-06 00:00:00 -04:00", 25 * time.Hour},
		{"America/Santiago", Day, "2025-04-05 23:30:00 -04:00", "2025-04-05 00:00:00 -03:00", "2025-04-06 00:00:00 -04:00", 25 * time.Hour},
		{"America/Santiago", Day, "2025-09-07 01:00:00 -03:00", "2025-09-07 01:00:00 -03:00", "2025-09-08 00:00:00 -03:00", 23 * time.Hour},
		{"America/Sao_Paulo", Day, "2018-11-04 12:00:00 -02:00", "2018-11-04 01:00:00 -02:00", "2018-11-05 00:00:00 -02:00", 23 * time.Hour},
		{"America/Sao_Paulo", Day, "2018-02-17 23:30:00 -03:00", "2018-02-17 00:00:00 -02:00", "2018-02-18 00:00:00 -03:00", 25 * time.Hour},
		// Lord Howe moves its clocks by 30 minutes, at 02:00.
		{"Australia/Lord_Howe", Day, "2025-04-06 12:00:00 +10:30", "2025-04-06 00:00:00 +11:00", "2025-04-07 00:00:00 +10:30", 24*time.Hour + 30*time.Minute},
		{"Australia/Lord_Howe", Day, "2025-10-05 12:00:00 +11:00", "2025-10-05 00:00:00 +10:30", "2025-10-06 00:00:00 +11:00", 24*time.Hour - 30*time.Minute},
		// Samoa skipped 2011-12-30: the 29th ends when the 31st begins.
		{"Pacific/Apia", Day, "2011-12-29 23:59:59 -10:00", "2011-12-29 00:00:00 -10:00", "2011-12-31 00:00:00 +14:00", 24 * time.Hour},
		{"Pacific/Apia", Day, "2011-12-31 00:00:00 +14:00", "2011-12-31 00:00:00 +14:00", "2012-01-01 00:00:00 +14:00", 24 * time.Hour},
		{"Pacific/Apia", Month, "2011-12-31 12:00:00 +14:00", "2011-12-01 00:00:00 -10:00", "2012-01-01 00:00:00 +14:00", 30 * 24 * time.Hour},
		{"Asia/Kolkata", Day, "2025-06-15 00:00:00 +05:30", "2025-06-15 00:00:00 +05:30", "2025-06-16 00:00:00 +05:30", 24 * time.Hour},
	}
	for _, tc := range cases {
		var loc *time.Location
		if tc.zone != "" {
			loc = zone(t, tc.zone)
		}
		c := CalendarWindow{Period: tc.period, Location: loc}
		at, wantStart, wantEnd := wall(t, tc.at), wall(t, tc.start), wall(t, tc.end)
		start, end := c.Window(at)
		if !start.Equal(wantStart) || !end.Equal(wantEnd) {
			t.Errorf("%v: window of %s is [%v, %v), want [%s, %s)", c, tc.at, start, end, tc.start, tc.end)
			continue
		}
		if got := end.Sub(start); got != tc.length {
			t.Errorf("%v: window of %s lasts %v, want %v", c, tc.at, got, tc.length)
		}
		if start.Location() != c.location() || end.Location() != c.location() {
			t.Errorf("%v: window of %s in %v, %v", c, tc.at, start.Location(), end.Location())
		}
	}
}

// TestCalendarWindowPartition checks, at random instants from 1990 to
// 2060 in zones with every kind of transition, that the windows tile time:
// each holds its instant, starts where the one before ends and ends where
// the next starts; that it starts at midnight of the right day (or at the
// transition that skipped it); and that its length is within what a
// transition can do.
func TestCalendarWindowPartition(t *testing.T) {
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "America/Havana", "America/Santiago",
		"America/Sao_Paulo", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "Pacific/Chatham",
		"America/St_Johns", "Asia/Tehran", "Africa/Casablanca", "Antarctica/Troll"}
	lengths := map[CalendarPeriod][2]time.Duration{
		Day:   {22 * time.Hour, 26 * time.Hour},
		Week:  {7*24*time.Hour - 2*time.Hour, 7*24*time.Hour + 2*time.Hour},
		Month: {28*24*time.Hour - 2*time.Hour, 31*24*time.Hour + 2*time.Hour},
	}
	lo := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	rng := rand.New(rand.NewPCG(14, 3))
	for _, name := range zones {
		loc := zone(t, name)
		for _, p := range []CalendarPeriod{Day, Week, Month} {
			c := CalendarWindow{Period: p, Location: loc}
			for range 300 {
				at := time.UnixMicro(lo + rng.Int64N(hi-lo))
				if err := checkWindow(c, at, lengths[p]); err != nil {
					t.Fatalf("%v: %v", c, err)
				}
			}
			// And around each transition of the zone in 2024-2026.
			for tr := time.Date(2024, 1, 1, 0, 0, 0, 0, loc); tr.Year() < 2027; {
				_, end := tr.ZoneBounds()
				if end.IsZero() || !end.After(tr) {
					break
				}
				for _, d := range []time.Duration{-25 * time.Hour, -time.Hour, -time.Microsecond, 0, time.Microsecond, time.Hour, 25 * time.Hour} {
					if err := checkWindow(c, end.Add(d), lengths[p]); err != nil {
						t.Fatalf("%v near the transition at %v: %v", c, end, err)
					}
				}
				tr = end
			}
		}
	}
}

// checkWindow checks the window of at under c.
func checkWindow(c CalendarWindow, at time.Time, length [2]time.Duration) error {
	start, end := c.Window(at)
	switch {
	case at.Before(start) || !at.Before(end):
		return fmt.Errorf("window [%v, %v) does not hold %v", start, end, at)
	case end.Sub(start) < length[0] || end.Sub(start) > length[1]:
		return fmt.Errorf("window [%v, %v) of %v lasts %v", start, end, at, end.Sub(start))
	}
	if s, e := c.Window(start); !s.Equal(start) || !e.Equal(end) {
		return fmt.Errorf("window of its start %v is [%v, %v), want [%v, %v)", start, s, e, start, end)
	}
	if s, _ := c.Window(end); !s.Equal(end) {
		return fmt.Errorf("the window after [%v, %v) starts at %v", start, end, s)
	}
	if _, e := c.Window(start.Add(-time.Microsecond)); !e.Equal(start) {
		return fmt.Errorf("the window before [%v, %v) ends at %v", start, end, e)
	}
	// The start reads midnight, or is a transition that skipped it.
	zs, _ := start.ZoneBounds()
	midnight := start.Hour() == 0 && start.Minute() == 0 && start.Second() == 0 && start.Nanosecond() == 0
	if !midnight && !zs.Equal(start) {
		return fmt.Errorf("window [%v, %v) starts neither at midnight nor at a transition", start, end)
	}
	day := start
	if !midnight {
		day = start.Add(-time.Second) // just before the skip: the day before the first day
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 12, 0, 0, 0, time.UTC)
	}
	switch {
	case c.Period == Week && day.Weekday() != time.Monday:
		return fmt.Errorf("week [%v, %v) starts on a %v", start, end, day.Weekday())
	case c.Period == Month && day.Day() != 1:
		return fmt.Errorf("month [%v, %v) starts on day %d", start, end, day.Day())
	}
	return nil
}

// TestCalendarBounds checks the boundary table the scripts get: three
// consecutive windows, the middle one holding the instant.
func TestCalendarBounds(t *testing.T) {
	c := CalendarWindow{Period: Day, Location: zone(t, "Europe/Paris")}
	b := c.bounds(wall(t, "2025-03-30 12:00:00 +02:00"))
	want := [4]int64{
		wall(t, "2025-03-29 00:00:00 +01:00").UnixMicro(),
		wall(t, "2025-03-30 00:00:00 +01:00").UnixMicro(),
		wall(t, "2025-03-31 00:00:00 +02:00").UnixMicro(),
		wall(t, "2025-04-01 00:00:00 +02:00").UnixMicro(),
	}
	if b != want {
		t.Fatalf("bounds = %v, want %v", b, want)
	}
}

func TestCalendarPeriod(t *testing.T) {
	for _, p := range []CalendarPeriod{Day, Week, Month} {
		got, err := ParseCalendarPeriod(p.String())
		if err != nil || got != p {
			t.Errorf("ParseCalendarPeriod(%q) = %v, %v", p.String(), got, err)
		}
		if err := p.Nominal().Round(0); err <= 0 {
			t.Errorf("%v: nominal %v", p, p.Nominal())
		}
		c := CalendarWindow{Period: p}
		if err := c.Validate(c.Limit(1000)); err != nil {
			t.Errorf("%v: Validate(Limit(1000)) = %v", p, err)
		}
	}
	for _, s := range []string{"", "Day", "1d", "year", "daily"} {
		if _, err := ParseCalendarPeriod(s); err == nil {
			t.Errorf("ParseCalendarPeriod(%q) succeeded", s)
		}
	}
	if s := (CalendarWindow{Period: Month, Location: zone(t, "Europe/Paris")}).String(); s != "month in Europe/Paris" {
		t.Errorf("String() = %q", s)
	}
	if s := (CalendarWindow{Period: Day}).String(); s != "day in UTC" {
		t.Errorf("String() = %q", s)
	}
}

// TestCalendarNewLimiter checks that NewLimiter refuses a calendar window
// without a valid period or with a limit of another period, before any
// Redis call.
func TestCalendarNewLimiter(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	day := CalendarWindow{Period: Day}
	for _, tc := range []struct {
		alg CalendarWindow
		lim ratelimit.Limit
	}{
		{CalendarWindow{}, ratelimit.Per(10, 24*time.Hour)},
		{CalendarWindow{Period: 9}, ratelimit.Per(10, 24*time.Hour)},
		{day, ratelimit.PerHour(10)},
		{CalendarWindow{Period: Month}, day.Limit(10)},
		{day, day.Limit(0)},
	} {
		if _, err := NewLimiter(rdb, tc.lim, WithAlgorithm(tc.alg)); !errors.Is(err, ratelimit.ErrInvalidLimit) {
			t.Errorf("NewLimiter(%v, %v): %v, want ErrInvalidLimit", tc.lim, tc.alg, err)
		}
	}
	l, err := NewLimiter(rdb, day.Limit(10), WithAlgorithm(day))
	if err != nil {
		t.Fatal(err)
	}
	if l.Algorithm().Name() != "calendar_window" || l.Limit() != ratelimit.Per(10, 24*time.Hour) {
		t.Fatalf("Algorithm %v, Limit %v", l.Algorithm().Name(), l.Limit())
	}
	if n := rdb.calls.Load(); n != 0 {
		t.Fatalf("%d Redis calls, want none", n)
	}
}

func BenchmarkCalendarBounds(b *testing.B) {
	c := CalendarWindow{Period: Month, Location: zone(b, "Europe/Paris")}
	at := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		c.bounds(at)
	}
}
