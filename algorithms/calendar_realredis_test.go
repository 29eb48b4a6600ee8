package algorithms

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockedSource returns a copy of the script src for a real redis-server
// that runs it at an instant the test chooses, a real Lua with the clock
// of a model: it reads the time (seconds, µs) from the hash KEYS[1] ..
// clockSuffix instead of TIME. Where it would set the key's TTL, it passes
// the same argument to PEXPIRE on another key, which must take it, and
// records it, as Redis received it, in the hash KEYS[1] .. ttlSuffix; the
// key itself keeps no TTL, so that the state outlives the real time the
// test takes. src must call TIME and PEXPIRE at most once each.
func clockedSource(t *testing.T, src string) *redis.Script {
	t.Helper()
	const (
		timeCall    = "local t = redis.call('TIME')"
		pexpireCall = "redis.call('PEXPIRE', KEYS[1], "
	)
	if strings.Count(src, timeCall) > 1 || strings.Count(src, pexpireCall) > 1 {
		t.Fatalf("script: more than one call of TIME or of PEXPIRE")
	}
	src = strings.Replace(src, pexpireCall, "pexpire(", 1)
	src = strings.Replace(src, timeCall, `local t = redis.call('HMGET', KEYS[1] .. '`+clockSuffix+`', 's', 'us')
local function pexpire(ms)
  redis.call('SET', KEYS[1] .. '`+ttlSuffix+`.probe', 1)
  redis.call('PEXPIRE', KEYS[1] .. '`+ttlSuffix+`.probe', ms)
  redis.call('HSET', KEYS[1] .. '`+ttlSuffix+`', 'ms', ms)
end`, 1)
	return redis.NewScript(src)
}

// runClocked runs the clocked script s on rkey with argv at nowUS, and
// returns its reply and the TTL it set, or -1 if it set none.
func runClocked(t *testing.T, rdb *redis.Client, s *redis.Script, rkey string, argv []any, nowUS int64) (reply, time.Duration, error) {
	t.Helper()
	ctx := t.Context()
	if err := rdb.Del(ctx, rkey+ttlSuffix).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, rkey+clockSuffix, "s", nowUS/usPerSec, "us", nowUS%usPerSec).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := parseReply(s.Run(ctx, rdb, []string{rkey}, argv...))
	if err != nil {
		return r, 0, err
	}
	h, err := rdb.HGetAll(ctx, rkey+ttlSuffix).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(h) == 0 {
		return r, -1, nil
	}
	// PEXPIRE took the argument (or the script would have failed); it must
	// also be a whole number of ms as written, not, say, 1e+17.
	ms, err := strconv.ParseInt(h["ms"], 10, 64)
	if err != nil {
		t.Fatalf("PEXPIRE %q: not a whole number", h["ms"])
	}
	return r, time.Duration(ms) * time.Millisecond, nil
}

// readCalendarState reads a calendar window key's hash.
var readCalendarState = intState(func(v []int64) CalendarWindowState {
	return CalendarWindowState{Start: v[0], End: v[1], Count: v[2]}
}, "s", "e", "c")

// TestRealRedisCalendar runs the calendar ops, clocked, on a real
// redis-server through the differential test's sequences (daylight-saving
// days, month ends, clocks a window or more apart): each reply must equal
// the model's, the hash Redis holds the model's state, and the TTL the
// script sets the end of the window, in whole ms.
func TestRealRedisCalendar(t *testing.T) { realRedisCalendar(t, calendarOps) }

func realRedisCalendar(t *testing.T, ops []calendarOp) {
	rdb, ks := patientServer(t)
	scripts := map[*redis.Script]*redis.Script{}
	for _, o := range ops {
		scripts[o.script] = clockedSource(t, sourceOf(t, o.script))
	}
	for i, tc := range calendarDiffCases {
		cal := CalendarWindow{Period: tc.period, Location: zone(t, tc.zone)}
		t.Run(fmt.Sprintf("%v/quota=%d", cal, tc.quota), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 41))
			m := CalendarWindowModel{Limit: cal.Limit(tc.quota), Calendar: cal}
			rkey := clientKey(t, ks, fmt.Sprintf("calendar-%d", i), cal)
			now := wall(t, tc.start).UnixMicro()
			window := tc.period.Nominal().Microseconds()
			var s CalendarWindowState
			for step := range extremeSteps {
				now += []int64{0, rng.Int64N(window / 20), rng.Int64N(window / 2), rng.Int64N(2 * window)}[rng.IntN(4)]
				o := ops[rng.IntN(len(ops))]
				n := 1 + rng.IntN(tc.quota)
				skew := []int64{0, 0, rng.Int64N(2*window) - window, rng.Int64N(6*window) - 3*window}[rng.IntN(4)]
				b := cal.bounds(time.UnixMicro(now + skew))
				where := fmt.Sprintf("step %d at %v: %s n=%d", step, time.UnixMicro(now).In(cal.location()), o.name, n)
				for attempt := 0; ; attempt++ {
					argv := []any{m.Limit.Rate, m.Limit.Period.Microseconds(), m.Limit.Burst, n, b[0], b[1], b[2], b[3]}
					got, ttl, err := runClocked(t, rdb, scripts[o.script], rkey, argv, now)
					if err != nil {
						t.Fatalf("%s: script: %v", where, err)
					}
					next, want := o.model(m, s, now, n, b)
					if got != want {
						t.Fatalf("%s: state %+v, table %v: script replied %v, model %v", where, s, b, got, want)
					}
					h, err := rdb.HGetAll(t.Context(), rkey).Result()
					if err != nil {
						t.Fatal(err)
					}
					stored, err := readCalendarState(h)
					if err != nil || stored != next {
						t.Fatalf("%s: Redis holds %+v (%v, %v), the model %+v", where, stored, h, err, next)
					}
					// The TTL is the time to the end of the window.
					checkTTL(t, where, o.writes(want) && next != (CalendarWindowState{}), ttl, next.End-now)
					s = next
					us, stale := o.stale(got)
					if !stale {
						break
					}
					if attempt > 0 {
						t.Fatalf("%s: stale twice", where)
					}
					b = cal.bounds(time.UnixMicro(us))
				}
			}
		})
	}
}

// sourceOf returns the text of one of the package's scripts.
func sourceOf(t *testing.T, s *redis.Script) string {
	t.Helper()
	name, ok := ScriptName(s.Hash())
	if !ok {
		t.Fatalf("script %s: not one of the package's", s.Hash())
	}
	src, err := scriptSource(name)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// skipNearWindowEnd skips t when the calendar window of the server's time
// ends within a minute.
func skipNearWindowEnd(t *testing.T, cal CalendarWindow, nowUS int64) {
	t.Helper()
	if _, end := cal.Window(time.UnixMicro(nowUS)); end.Sub(time.UnixMicro(nowUS)) < time.Minute {
		t.Skipf("the %v window ends within a minute", cal)
	}
}

// TestRealRedisCalendarQuota runs calendar quotas on a real redis-server
// at its real time, with the system clock: the quota is admitted and no
// more, ResetAfter and RetryAfter are the time to the end of the window
// that Window computes from the server's time, the key expires then, a
// refund gives back, and several instances together admit exactly the
// quota.
func TestRealRedisCalendarQuota(t *testing.T) {
	srv, rdb, ks := realServer(t)
	ctx := t.Context()
	for _, cal := range []CalendarWindow{
		{Period: Day},
		{Period: Week, Location: zone(t, "America/New_York")},
		{Period: Month, Location: zone(t, "Europe/Paris")},
	} {
		t.Run(cal.String(), func(t *testing.T) {
			now := serverNow(t, rdb)
			skipNearWindowEnd(t, cal, now)
			_, end := cal.Window(time.UnixMicro(now))
			l := newLimiter(t, rdb, cal.Limit(3), WithAlgorithm(cal), WithKeyspace(ks))
			key := "quota-" + cal.Period.String() // a key holds its window: one per calendar
			rkey := clientKey(t, ks, key, cal)
			for i := range 3 {
				d, err := l.Allow(ctx, key)
				if err != nil || !d.Allowed || d.Remaining != 2-i {
					t.Fatalf("request %d: %+v, %v", i, d, err)
				}
				toEnd := time.Until(end) // the server's clock and ours are the same machine's
				if d.ResetAfter > toEnd+time.Minute || d.ResetAfter < toEnd-time.Minute {
					t.Fatalf("request %d: ResetAfter %v, want about %v, until %v", i, d.ResetAfter, toEnd, end)
				}
				pttl, err := rdb.PTTL(ctx, rkey).Result()
				if err != nil || pttl < d.ResetAfter-time.Minute || pttl > d.ResetAfter+time.Millisecond {
					t.Fatalf("request %d: PTTL %v, %v; want about %v", i, pttl, err, d.ResetAfter)
				}
			}
			d, err := l.Allow(ctx, key)
			if err != nil || d.Allowed || d.RetryAfter != d.ResetAfter || d.RetryAfter <= 0 {
				t.Fatalf("after the quota: %+v, %v", d, err)
			}
			if err := l.RefundN(ctx, key, 2); err != nil {
				t.Fatal(err)
			}
			if d, err := l.AllowN(ctx, key, 2); err != nil || !d.Allowed || d.Remaining != 0 {
				t.Fatalf("after refunding 2: %+v, %v", d, err)
			}
		})
	}

	t.Run("instances", func(t *testing.T) {
		cal := CalendarWindow{Period: Month, Location: zone(t, "Pacific/Auckland")}
		skipNearWindowEnd(t, cal, serverNow(t, rdb))
		const (
			instances  = 4
			goroutines = 4
			attempts   = 40
			quota      = 300 // < 640 attempts
		)
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		limiters := make([]*Limiter, instances)
		for i := range limiters {
			limiters[i] = newLimiter(t, srv.Client(), cal.Limit(quota), WithAlgorithm(cal), WithKeyspace(ks), WithTimeout(5*time.Second))
		}
		if admitted, failed := hammer(ctx, limiters, goroutines, attempts); failed != 0 || admitted != quota {
			t.Fatalf("admitted %d, %d failed; want exactly %d admitted", admitted, failed, quota)
		}
	})
}
