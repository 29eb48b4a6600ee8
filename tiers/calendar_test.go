package tiers_test

import (
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // the tests' zones, whatever the machine has installed

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func loadZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseCalendar(t *testing.T) {
	cfg, err := tiers.Parse("quota.yaml", []byte(`
tiers:
  free:
    limits:
      second: {rate: 5, period: 1s}
      day:
        timezone: Europe/Paris   # before period: order does not matter
        rate: 1000
        period: day
      week: {rate: 5000, period: week, timezone: America/New_York, algorithm: calendar_window}
      month: {rate: 100000, period: month, burst: 100000, scope: tier}
      rolling: {rate: 1000, period: 1d}
`))
	if err != nil {
		t.Fatal(err)
	}
	day := algorithms.CalendarWindow{Period: algorithms.Day, Location: loadZone(t, "Europe/Paris")}
	week := algorithms.CalendarWindow{Period: algorithms.Week, Location: loadZone(t, "America/New_York")}
	month := algorithms.CalendarWindow{Period: algorithms.Month}
	want := []tiers.Limit{
		tiers.Client("second", ratelimit.PerSecond(5)),
		tiers.Client("day", day.Limit(1000)).WithAlgorithm(day),
		tiers.Client("week", week.Limit(5000)).WithAlgorithm(week),
		tiers.Shared("month", month.Limit(100000)).WithAlgorithm(month),
		tiers.Client("rolling", ratelimit.Per(1000, 24*time.Hour)),
	}
	got := cfg.Tiers[0].Limits
	if len(got) != len(want) {
		t.Fatalf("limits %+v", got)
	}
	for i := range want {
		// Locations are compared by name: LoadLocation returns a new one
		// each time.
		g, w := got[i], want[i]
		gc, gok := g.Algorithm.(algorithms.CalendarWindow)
		wc, wok := w.Algorithm.(algorithms.CalendarWindow)
		if gok != wok || gok && gc.String() != wc.String() {
			t.Errorf("limit %q: algorithm %v, want %v", w.Name, g.Algorithm, w.Algorithm)
		}
		g.Algorithm, w.Algorithm = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("limit %q: %+v, want %+v", w.Name, g, w)
		}
	}
}

// TestParseCalendarErrors checks that every misuse of a calendar period
// fails with the file, the line and the field at fault.
func TestParseCalendarErrors(t *testing.T) {
	const head = "tiers:\n  free:\n    limits:\n" // lines 1-3
	checkParseErrors(t, true, []parseError{
		{"unknown zone", head + "      day:\n        rate: 10\n        period: day\n        timezone: Europe/Pariss\n",
			7, "tiers.free.limits.day.timezone", `unknown time zone "Europe/Pariss"`},
		{"empty zone", head + "      day: {rate: 10, period: day, timezone: \"\"}\n",
			4, "tiers.free.limits.day.timezone", `time zone ""`},
		{"local zone", head + "      day: {rate: 10, period: day, timezone: Local}\n",
			4, "tiers.free.limits.day.timezone", `time zone "Local"`},
		{"zone not a string", head + "      day: {rate: 10, period: day, timezone: [a]}\n",
			4, "tiers.free.limits.day.timezone", "must be a string"},
		{"zone with a duration", head + "      day:\n        rate: 10\n        period: 24h\n        timezone: UTC\n",
			7, "tiers.free.limits.day.timezone", "applies only to a calendar period"},
		{"another algorithm", head + "      day:\n        rate: 10\n        period: day\n        algorithm: gcra\n",
			7, "tiers.free.limits.day.algorithm", "calendar_window algorithm, not gcra"},
		{"calendar_window with a duration", head + "      day:\n        rate: 10\n        period: 1d\n        algorithm: calendar_window\n",
			7, "tiers.free.limits.day.algorithm", "needs a calendar period"},
		{"burst", head + "      day:\n        rate: 10\n        period: month\n        burst: 20\n",
			7, "tiers.free.limits.day.burst", "leave burst out"},
		{"lease", head + "      day:\n        rate: 10\n        period: week\n        lease: true\n",
			7, "tiers.free.limits.day.lease", "cannot lease"},
		{"misspelt period", head + "      day:\n        rate: 10\n        period: dya\n",
			6, "tiers.free.limits.day.period", "must be a duration"},
		{"override inherits the calendar", head + "      day: {rate: 10, period: day}\n" +
			"overrides:\n  acme:\n    tier: free\n    limits:\n      day:\n        rate: 50\n        period: 1h\n",
			11, "overrides.acme.limits.day.period", "needs period 24h0m0s"},
	})
}

// TestConfigCalendarValidate checks a Config built in code: a calendar
// window with a limit of another period, or that leases, is refused with
// the field named.
func TestConfigCalendarValidate(t *testing.T) {
	day := algorithms.CalendarWindow{Period: algorithms.Day}
	for _, tc := range []struct {
		lim   tiers.Limit
		field string
	}{
		{tiers.Client("d", ratelimit.PerHour(10)).WithAlgorithm(day), "tiers.t.limits.d.period"},
		{tiers.Client("d", day.Limit(10)).WithAlgorithm(algorithms.CalendarWindow{}), "tiers.t.limits.d.period"},
		{tiers.Client("d", day.Limit(10)).WithAlgorithm(day).WithLease(true), "tiers.t.limits.d.lease"},
	} {
		err := tiers.Config{Tiers: []tiers.Tier{{Name: "t", Limits: []tiers.Limit{tc.lim}}}}.Validate()
		var ce *tiers.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: Validate() = %v, want a problem at %s", tc.lim, err, tc.field)
		}
	}
}

// TestCalendarTier runs a tier with a per-second limit and a daily quota
// in Europe/Paris on miniredis, through the day of 23 hours: the result
// reports the quota's true remaining and the time to midnight in Paris.
// A reload that moves the quota to another zone makes a new limiter; one
// that changes nothing keeps it.
func TestCalendarTier(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.ClockTTL(true)
	paris := loadZone(t, "Europe/Paris")
	mr.SetTime(time.Date(2025, 3, 30, 1, 0, 0, 0, paris))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var made atomic.Int64
	direct := tiers.Direct(rdb)
	factory := func(s tiers.Spec) (ratelimit.Limiter, error) { made.Add(1); return direct(s) }
	config := func(zone string) tiers.Config {
		cfg, err := tiers.Parse("quota.yaml", []byte(`
default_tier: free
tiers:
  free:
    limits:
      second: {rate: 10, period: 1s}
      day: {rate: 3, period: day, timezone: `+zone+`}
`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	l := newLimiter(t, factory, config("Europe/Paris"))
	ctx := t.Context()
	for i := range 3 {
		res, err := l.Check(ctx, "alice", "", 1)
		if err != nil || !res.Decision.Allowed {
			t.Fatalf("request %d: %+v, %v", i, res, err)
		}
		day := res.Limits[1]
		if day.Decision.Remaining != 2-i || day.Decision.ResetAfter != 22*time.Hour || day.Algorithm.Name() != "calendar_window" {
			t.Fatalf("request %d: day %+v", i, day)
		}
	}
	res, err := l.Check(ctx, "alice", "", 1)
	if err != nil || res.Decision.Allowed || res.Decision.RetryAfter != 22*time.Hour {
		t.Fatalf("after the quota: %+v, %v", res.Decision, err)
	}
	if made.Load() != 2 {
		t.Fatalf("%d limiters made, want 2", made.Load())
	}
	if err := l.Reload(config("Europe/Paris")); err != nil || made.Load() != 2 {
		t.Fatalf("reload of the same config: %v; %d limiters made, want 2", err, made.Load())
	}
	if err := l.Reload(config("Asia/Tokyo")); err != nil || made.Load() != 3 {
		t.Fatalf("reload to another zone: %v; %d limiters made, want 3", err, made.Load())
	}
	// The key holds the Paris day until it ends; then Tokyo's days apply.
	if res, err := l.Check(ctx, "alice", "", 1); err != nil || res.Decision.Allowed {
		t.Fatalf("after the reload, in the Paris day: %+v, %v", res.Decision, err)
	}
	mr.SetTime(time.Date(2025, 3, 31, 0, 0, 0, 0, paris)) // 07:00 in Tokyo
	res, err = l.Check(ctx, "alice", "", 1)
	if err != nil || !res.Decision.Allowed || res.Limits[1].Decision.ResetAfter != 17*time.Hour {
		t.Fatalf("in the Tokyo day: %+v, %v", res.Limits[1].Decision, err)
	}
}

// TestCalendarTierRealRedis runs a tier's monthly quota on a real
// redis-server from two Limiters, as two instances of a service would: the
// quota is admitted once between them.
func TestCalendarTierRealRedis(t *testing.T) {
	rdb, base := realServer(t)
	cfg, err := tiers.Parse("quota.yaml", []byte(`
default_tier: free
tiers:
  free:
    limits:
      month: {rate: 5, period: month, timezone: Pacific/Auckland}
`))
	if err != nil {
		t.Fatal(err)
	}
	cal := cfg.Tiers[0].Limits[0].Algorithm.(algorithms.CalendarWindow)
	if _, end := cal.Window(time.Now()); time.Until(end) < time.Minute {
		t.Skip("the month ends within a minute")
	}
	var ls []*tiers.Limiter
	for range 2 {
		l := newLimiter(t, tiers.Direct(rdb), cfg, tiers.WithKeyspace(base))
		ls = append(ls, l)
	}
	if admitted := limitertest.Admitted(t, "bob", 8, ls...); admitted != 5 {
		t.Fatalf("admitted %d, want 5", admitted)
	}
}
