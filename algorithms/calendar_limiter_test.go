package algorithms

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// scriptCalls is a redis.Hook that counts the script calls that Redis
// ran: EVAL and EVALSHA without an error (so a NOSCRIPT miss and the EVAL
// that follows it count once).
type scriptCalls struct{ n atomic.Int64 }

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := strings.ToLower(cmd.Name()); (name == "eval" || name == "evalsha") && err == nil {
			h.n.Add(1)
		}
		return err
	}
}

// calendarRig is a Limiter of a calendar quota on miniredis, with a Go
// clock that follows the server's unless the test skews it.
type calendarRig struct {
	mr    *miniredis.Miniredis
	rdb   *redis.Client
	clock *limitertest.Clock
	calls *scriptCalls
	l     *Limiter
	skew  time.Duration // of the Go clock against the server's
}

func newCalendarRig(t *testing.T, cal CalendarWindow, quota int, at time.Time) *calendarRig {
	t.Helper()
	mr, rdb := miniServer(t, at.UnixMicro())
	r := &calendarRig{mr: mr, rdb: rdb, clock: &limitertest.Clock{}, calls: &scriptCalls{}}
	rdb.AddHook(r.calls)
	r.l = newLimiter(t, rdb, cal.Limit(quota), WithAlgorithm(cal), WithClock(r.clock))
	r.at(at)
	return r
}

// at sets the server's clock to t, and the Go clock to t plus the skew.
func (r *calendarRig) at(t time.Time) {
	setNow(r.mr, t.UnixMicro())
	r.clock.Set(t.Add(r.skew))
}

// calendarStep is one request of a steps table: at a wall-clock time, n
// tokens, and the decision wanted.
type calendarStep struct {
	at         string // as wall parses it
	n          int
	allowed    bool
	remaining  int
	resetAfter time.Duration // RetryAfter is this for a denial, else 0
}

// runCalendarSteps runs steps on r, checking each decision and that the
// key expires exactly at the end of its window (ResetAfter, in whole ms).
func runCalendarSteps(t *testing.T, r *calendarRig, key string, steps []calendarStep) {
	t.Helper()
	rkey := clientKey(t, ratelimit.Keyspace{}, key, r.l.Algorithm())
	for i, st := range steps {
		r.at(wall(t, st.at))
		d, err := r.l.AllowN(t.Context(), key, st.n)
		if err != nil {
			t.Fatalf("step %d at %s: %v", i, st.at, err)
		}
		want := ratelimit.Decision{Allowed: st.allowed, Limit: r.l.Limit(), Remaining: st.remaining,
			ResetAfter: st.resetAfter, Source: ratelimit.SourceRedis}
		if !st.allowed {
			want.RetryAfter = st.resetAfter
		}
		if d != want {
			t.Fatalf("step %d at %s, n=%d: %+v, want %+v", i, st.at, st.n, d, want)
		}
		// PEXPIRE takes whole ms: the key outlives its window by less.
		if got := r.mr.TTL(rkey); got < st.resetAfter || got >= st.resetAfter+time.Millisecond {
			t.Fatalf("step %d at %s: TTL %v, want the window's end, %v", i, st.at, got, st.resetAfter)
		}
	}
}

// TestCalendarDaylightSaving runs a daily quota of 3 in Europe/Paris
// through the day of 23 hours (2025-03-30) and the day of 25 hours
// (2025-10-26), with the Go clock and the server's in step.
func TestCalendarDaylightSaving(t *testing.T) {
	cal := CalendarWindow{Period: Day, Location: zone(t, "Europe/Paris")}
	r := newCalendarRig(t, cal, 3, wall(t, "2025-03-29 23:00:00 +01:00"))
	runCalendarSteps(t, r, "dst", []calendarStep{
		{"2025-03-29 23:00:00 +01:00", 3, true, 0, time.Hour},
		{"2025-03-29 23:59:59 +01:00", 1, false, 0, time.Second},
		// Midnight: a new window of 23 hours.
		{"2025-03-30 00:00:00 +01:00", 1, true, 2, 23 * time.Hour},
		{"2025-03-30 01:59:59 +01:00", 1, true, 1, 21*time.Hour + time.Second},
		{"2025-03-30 03:00:00 +02:00", 1, true, 0, 21 * time.Hour},
		{"2025-03-30 12:00:00 +02:00", 1, false, 0, 12 * time.Hour},
		{"2025-03-30 23:59:59.5 +02:00", 1, false, 0, 500 * time.Millisecond},
		{"2025-03-31 00:00:00 +02:00", 2, true, 1, 24 * time.Hour},
		// The day of 25 hours: 02:00 to 03:00 comes twice.
		{"2025-10-26 00:00:00 +02:00", 1, true, 2, 25 * time.Hour},
		{"2025-10-26 02:30:00 +02:00", 1, true, 1, 22*time.Hour + 30*time.Minute},
		{"2025-10-26 02:30:00 +01:00", 1, true, 0, 21*time.Hour + 30*time.Minute},
		{"2025-10-26 23:00:00 +01:00", 1, false, 0, time.Hour},
		{"2025-10-27 00:00:00 +01:00", 1, true, 2, 24 * time.Hour},
	})
}

// TestCalendarMonthEnds runs a monthly quota of 2 in Europe/Paris across
// the ends of months of 29, 28, 30 and 31 days and of a year.
func TestCalendarMonthEnds(t *testing.T) {
	cal := CalendarWindow{Period: Month, Location: zone(t, "Europe/Paris")}
	r := newCalendarRig(t, cal, 2, wall(t, "2024-02-01 00:00:00 +01:00"))
	const day = 24 * time.Hour
	runCalendarSteps(t, r, "month", []calendarStep{
		{"2024-02-01 00:00:00 +01:00", 2, true, 0, 29 * day},
		{"2024-02-28 23:59:59 +01:00", 1, false, 0, day + time.Second}, // a leap year: the 29th is left
		{"2024-02-29 23:59:59.999999 +01:00", 1, false, 0, time.Microsecond},
		{"2024-03-01 00:00:00 +01:00", 1, true, 1, 31*day - time.Hour}, // the spring change is in March
		{"2025-02-28 23:59:59 +01:00", 2, true, 0, time.Second},
		{"2025-03-01 00:00:00 +01:00", 2, true, 0, 31*day - time.Hour},
		{"2025-04-30 12:00:00 +02:00", 1, true, 1, 12 * time.Hour},
		{"2025-10-31 00:00:00 +01:00", 2, true, 0, day},
		{"2025-10-31 23:00:00 +01:00", 1, false, 0, time.Hour},
		{"2025-12-31 23:59:59 +01:00", 2, true, 0, time.Second},
		{"2025-12-31 23:59:59.999 +01:00", 1, false, 0, time.Millisecond},
		{"2026-01-01 00:00:00 +01:00", 2, true, 0, 31 * day},
	})
}

// TestCalendarClockSkew checks that the Go clock only proposes windows:
// wherever it is, the decisions are the server's. It costs one script
// call when the key's window holds the server's time, or one of the three
// windows around the Go clock does; two otherwise.
func TestCalendarClockSkew(t *testing.T) {
	cal := CalendarWindow{Period: Day, Location: zone(t, "Europe/Paris")}
	const day = 24 * time.Hour
	// The steps that need the table: the first, on a missing key, the
	// second, in a new day, and the last, in the next.
	far := []int64{2, 2, 1, 1, 1, 2}
	near := []int64{1, 1, 1, 1, 1, 1}
	for _, tc := range []struct {
		skew  time.Duration
		calls []int64
	}{
		{0, near},
		{time.Second, near}, // across midnight: the next window
		{-time.Second, near},
		{12 * time.Hour, near},
		{-12 * time.Hour, near},
		{3 * day, far},
		{-3 * day, far},
		{400 * day, far},
		{-30 * 365 * day, far},
	} {
		t.Run(fmt.Sprintf("skew=%v", tc.skew), func(t *testing.T) {
			r := newCalendarRig(t, cal, 3, wall(t, "2025-03-30 00:00:00 +01:00"))
			r.skew = tc.skew
			steps := []struct {
				at        string
				allowed   bool
				remaining int
				reset     time.Duration
			}{
				{"2025-03-29 23:59:59.5 +01:00", true, 2, 500 * time.Millisecond},
				{"2025-03-30 00:00:00 +01:00", true, 2, 23 * time.Hour},
				{"2025-03-30 00:00:00.5 +01:00", true, 1, 23*time.Hour - 500*time.Millisecond},
				{"2025-03-30 23:59:59 +02:00", true, 0, time.Second},
				{"2025-03-30 23:59:59.999999 +02:00", false, 0, time.Microsecond},
				{"2025-03-31 00:00:00 +02:00", true, 2, 24 * time.Hour},
			}
			for i, st := range steps {
				r.at(wall(t, st.at))
				before := r.calls.n.Load()
				d, err := r.l.Allow(t.Context(), "skew")
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if d.Allowed != st.allowed || d.Remaining != st.remaining || d.ResetAfter != st.reset {
					t.Fatalf("step %d at %s: %+v, want allowed %v, %d left, reset after %v", i, st.at, d, st.allowed, st.remaining, st.reset)
				}
				if calls := r.calls.n.Load() - before; calls != tc.calls[i] {
					t.Fatalf("step %d: %d script calls, want %d", i, calls, tc.calls[i])
				}
			}
		})
	}
}

// TestCalendarKeyWindowWins checks that a key's window, while it lasts,
// is every caller's: a limiter of another period or zone counts in it,
// and its own windows apply once it ends.
func TestCalendarKeyWindowWins(t *testing.T) {
	paris := zone(t, "Europe/Paris")
	at := wall(t, "2025-06-15 12:00:00 +02:00")
	mr, rdb := miniServer(t, at.UnixMicro())
	clk := limitertest.NewClock(at)
	day := CalendarWindow{Period: Day, Location: paris}
	tokyo := CalendarWindow{Period: Day, Location: zone(t, "Asia/Tokyo")}
	month := CalendarWindow{Period: Month, Location: paris}
	lDay := newLimiter(t, rdb, day.Limit(5), WithAlgorithm(day), WithClock(clk))
	lTokyo := newLimiter(t, rdb, tokyo.Limit(5), WithAlgorithm(tokyo), WithClock(clk))
	lMonth := newLimiter(t, rdb, month.Limit(5), WithAlgorithm(month), WithClock(clk))
	ctx := t.Context()
	if d, err := lDay.AllowN(ctx, "k", 2); err != nil || d.ResetAfter != 12*time.Hour {
		t.Fatalf("day: %+v, %v", d, err)
	}
	// Tokyo's day ends at 17:00 Paris time, the month on July 1st: both
	// count in the Paris day that the key holds.
	if d, err := lTokyo.Allow(ctx, "k"); err != nil || d.Remaining != 2 || d.ResetAfter != 12*time.Hour {
		t.Fatalf("tokyo: %+v, %v", d, err)
	}
	if d, err := lMonth.Allow(ctx, "k"); err != nil || d.Remaining != 1 || d.ResetAfter != 12*time.Hour {
		t.Fatalf("month: %+v, %v", d, err)
	}
	// After the Paris day, the month's own window.
	next := wall(t, "2025-06-16 00:00:00 +02:00")
	setNow(mr, next.UnixMicro())
	clk.Set(next)
	if d, err := lMonth.Allow(ctx, "k"); err != nil || d.Remaining != 4 || d.ResetAfter != 15*24*time.Hour {
		t.Fatalf("month after the day: %+v, %v", d, err)
	}
}

// The ops of the calendar window, for calendarDifferential: each runs its
// script with the table b (ignored by the scripts that take none).
type calendarOp struct {
	name   string
	script *redis.Script
	table  bool // the script takes the boundary table
	model  func(m CalendarWindowModel, s CalendarWindowState, now int64, n int, b [4]int64) (CalendarWindowState, reply)
	// stale reports whether a reply says that no window holds now, and
	// the server's time it gives.
	stale func(reply) (int64, bool)
	// writes reports whether reply r wrote the state (and its TTL).
	writes func(r reply) bool
}

var calendarOps = []calendarOp{
	{"check", calendarWindowScript, true,
		func(m CalendarWindowModel, s CalendarWindowState, now int64, n int, b [4]int64) (CalendarWindowState, reply) {
			return m.check(s, now, n, b)
		}, checkStale, func(r reply) bool { return r[0] == 1 }},
	{"refund", calendarWindowRefundScript, false,
		func(m CalendarWindowModel, s CalendarWindowState, now int64, n int, _ [4]int64) (CalendarWindowState, reply) {
			return m.refund(s, now, n)
		}, noStale, func(r reply) bool { return r[3] > 0 }},
	{"peek", calendarWindowPeekScript, false,
		func(m CalendarWindowModel, s CalendarWindowState, now int64, _ int, _ [4]int64) (CalendarWindowState, reply) {
			return s, m.peek(s, now)
		}, noStale, func(reply) bool { return false }},
	{"reset", resetScript, false,
		func(m CalendarWindowModel, _ CalendarWindowState, _ int64, _ int, _ [4]int64) (CalendarWindowState, reply) {
			return CalendarWindowState{}, reply{int64(m.Limit.Burst), 0, 0, 0}
		}, noStale, func(reply) bool { return false }},
	{"charge", calendarWindowChargeScript, true,
		func(m CalendarWindowModel, s CalendarWindowState, now int64, n int, b [4]int64) (CalendarWindowState, reply) {
			return m.charge(s, now, n, b)
		}, chargeStale, func(r reply) bool { return r[1] != 2 }},
}

func noStale(reply) (int64, bool) { return 0, false }

// runCalendarScript runs a calendar script with the table b.
func runCalendarScript(ctx context.Context, s *redis.Script, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int, b [4]int64) (reply, error) {
	return parseReply(s.Run(ctx, rdb, []string{rkey}, lim.Rate, lim.Period.Microseconds(), lim.Burst, n, b[0], b[1], b[2], b[3]))
}

// calendarDiffCases are the calendars, quotas and starts of the
// differential tests: days, weeks and months across daylight-saving
// changes, at 02:00, at midnight and by 30 minutes.
var calendarDiffCases = []struct {
	zone   string
	period CalendarPeriod
	quota  int
	start  string
}{
	{"Europe/Paris", Day, 5, "2025-03-29 20:00:00 +01:00"},
	{"Europe/Paris", Day, 1, "2025-10-25 20:00:00 +02:00"},
	{"America/Havana", Day, 4, "2025-03-08 20:00:00 -05:00"},
	{"Australia/Lord_Howe", Day, 3, "2025-04-05 20:00:00 +11:00"},
	{"Europe/Paris", Week, 9, "2025-03-20 00:00:00 +01:00"},
	{"Europe/Paris", Month, 7, "2024-01-25 00:00:00 +01:00"},
	{"America/Santiago", Month, 12, "2025-03-20 00:00:00 -03:00"},
}

// TestCalendarDifferential runs seeded random sequences of calendar ops,
// each both as a script on miniredis, whose clock it drives, and on the
// model, through the Limiter's protocol with a Go clock skewed at random
// (so that the table misses the server's time now and then), and checks
// that every reply is the model's, that the key exists exactly while the
// model says it must with the TTL the model implies, and that what the
// protocol ends with is the model's Decide.
func TestCalendarDifferential(t *testing.T) { calendarDifferential(t, calendarOps) }

func calendarDifferential(t *testing.T, ops []calendarOp) {
	for i, tc := range calendarDiffCases {
		cal := CalendarWindow{Period: tc.period, Location: zone(t, tc.zone)}
		t.Run(fmt.Sprintf("%v/quota=%d", cal, tc.quota), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 14))
			now := wall(t, tc.start).UnixMicro()
			mr, rdb := miniServer(t, now)
			m := CalendarWindowModel{Limit: cal.Limit(tc.quota), Calendar: cal}
			const rkey = "rl:{c:k}:calendar_window"
			var s CalendarWindowState
			var expireAt int64
			stales := 0
			window := tc.period.Nominal().Microseconds()
			for step := range diffSteps {
				switch p := rng.IntN(100); {
				case p < 30:
				case p < 60:
					now += rng.Int64N(window / 20)
				case p < 90:
					now += rng.Int64N(window / 3)
				default:
					now += rng.Int64N(2 * window)
				}
				setNow(mr, now)
				o := ops[rng.IntN(len(ops))]
				if rng.IntN(2) == 0 {
					o = ops[0]
				}
				n := 1
				if rng.IntN(100) < 40 {
					n = 1 + rng.IntN(tc.quota)
				}
				if o.name == "charge" {
					n = chargeN(m.Limit, 1+rng.Int64N(3*int64(tc.quota)))
				}
				var skew int64
				switch p := rng.IntN(100); {
				case p < 60:
				case p < 80:
					skew = rng.Int64N(2*window) - window
				default:
					skew = rng.Int64N(6*window) - 3*window
				}
				where := fmt.Sprintf("step %d at %v (Go clock %+dµs): %s n=%d", step, time.UnixMicro(now).In(cal.location()), skew, o.name, n)
				b := cal.bounds(time.UnixMicro(now + skew))
				var got, want reply
				var next CalendarWindowState
				for attempt := 0; ; attempt++ {
					var err error
					got, err = runCalendarScript(t.Context(), o.script, rdb, rkey, m.Limit, n, b)
					if err != nil {
						t.Fatalf("%s: script: %v", where, err)
					}
					next, want = o.model(m, s, now, n, b)
					if got != want {
						t.Fatalf("%s, table %v: state %+v: script replied %v, model %v", where, b, s, got, want)
					}
					us, stale := o.stale(got)
					if !stale {
						break
					}
					if !o.table || us != now || attempt > 0 {
						t.Fatalf("%s: stale reply %v on attempt %d", where, got, attempt)
					}
					b = cal.bounds(time.UnixMicro(us))
					stales++
				}
				if o.name == "check" {
					if _, d := m.Decide(s, now, n); d != got.decision(m.Limit) {
						t.Fatalf("%s: Decide %+v, the protocol %+v", where, d, got.decision(m.Limit))
					}
				}
				if o.writes(want) && next != (CalendarWindowState{}) {
					expireAt = now + ceilInt(float64(want[3])/1000)*1000
				}
				s = next
				checkKey(t, mr, rkey, where, s != (CalendarWindowState{}) && expireAt > now, expireAt-now)
			}
			if stales == 0 {
				t.Fatal("no table missed the server's time: the protocol's second run was not tested")
			}
		})
	}
}
