package algorithms

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// The tests in this file run the scripts on a real redis-server with the
// most extreme limits that ratelimit.Limit.Validate accepts, and check
// that the scripts' float64 arithmetic stays exact and in range there: the
// replies agree with the models, no call fails, and what the scripts store
// is sane.

const (
	usPerSec    = int64(time.Second / time.Microsecond)
	maxRefillUS = int64(ratelimit.MaxRefill / time.Microsecond)
	maxPeriodUS = int64(ratelimit.MaxPeriod / time.Microsecond)
	// tFar is 2150-01-01 00:00:00 UTC plus 654321 µs: late in the range in
	// which now + MaxRefill stays below 2^53 µs.
	tFar = int64(5680281600_654321)
)

// maxBurst returns the largest burst Validate accepts for rate and period:
// at most MaxRate, and a refill time Burst × Period / Rate of at most
// MaxRefill.
func maxBurst(rate int, period time.Duration) int {
	b := new(big.Int).Mul(big.NewInt(int64(ratelimit.MaxRefill)), big.NewInt(int64(rate)))
	b.Quo(b, big.NewInt(int64(period)))
	if !b.IsInt64() || b.Int64() > ratelimit.MaxRate {
		return ratelimit.MaxRate
	}
	return int(b.Int64())
}

// minRate returns the smallest rate Validate accepts for burst and period.
func minRate(burst int, period time.Duration) int {
	r := new(big.Int).Mul(big.NewInt(int64(burst)), big.NewInt(int64(period)))
	m := big.NewInt(int64(ratelimit.MaxRefill))
	r.Add(r, m).Sub(r, big.NewInt(1)).Quo(r, m) // rounded up
	return int(max(r.Int64(), 1))
}

// extremeLimits are limits at the edges of Validate, each named.
var extremeLimits = []struct {
	name string
	lim  ratelimit.Limit
}{
	{"max rate, burst and period", ratelimit.Limit{Rate: ratelimit.MaxRate, Period: ratelimit.MaxPeriod, Burst: ratelimit.MaxRate}},
	{"max burst and period, min rate", ratelimit.Limit{
		Rate: minRate(ratelimit.MaxRate, ratelimit.MaxPeriod), Period: ratelimit.MaxPeriod, Burst: ratelimit.MaxRate}},
	{"max period, rate 1, max burst", ratelimit.Per(1, ratelimit.MaxPeriod).WithBurst(maxBurst(1, ratelimit.MaxPeriod))},
	{"refill exactly MaxRefill", ratelimit.Per(1, 365*24*time.Hour).WithBurst(100)},
	{"max rate, min period, max burst", ratelimit.Limit{Rate: ratelimit.MaxRate, Period: ratelimit.MinPeriod, Burst: ratelimit.MaxRate}},
	{"max rate, min period, burst 1", ratelimit.Limit{Rate: ratelimit.MaxRate, Period: ratelimit.MinPeriod, Burst: 1}},
	{"min period, rate 1, max burst", ratelimit.Per(1, ratelimit.MinPeriod).WithBurst(maxBurst(1, ratelimit.MinPeriod))},
	{"prime rate, odd period, max burst", ratelimit.Per(999_999_937, ratelimit.MaxPeriod-time.Microsecond).
		WithBurst(maxBurst(999_999_937, ratelimit.MaxPeriod-time.Microsecond))},
	{"prime rate, 1 s, max burst", ratelimit.Per(1_000_003, time.Second).WithBurst(maxBurst(1_000_003, time.Second))},
}

func TestExtremeLimitsAreValid(t *testing.T) {
	for _, x := range extremeLimits {
		if err := x.lim.Validate(); err != nil {
			t.Errorf("%s (%v): %v", x.name, x.lim, err)
		}
		if d := x.lim.DurationFor(x.lim.Burst); d <= 0 || d > ratelimit.MaxRefill {
			t.Errorf("%s (%v): refill time %v, want in (0, MaxRefill]", x.name, x.lim, d)
		}
	}
	// One step further is invalid.
	for _, lim := range []ratelimit.Limit{
		{Rate: minRate(ratelimit.MaxRate, ratelimit.MaxPeriod) - 1, Period: ratelimit.MaxPeriod, Burst: ratelimit.MaxRate},
		ratelimit.Per(1, ratelimit.MaxPeriod).WithBurst(maxBurst(1, ratelimit.MaxPeriod) + 1),
		ratelimit.Per(1, 365*24*time.Hour).WithBurst(101),
		ratelimit.Per(1, 365*24*time.Hour+time.Microsecond).WithBurst(100),
	} {
		if err := lim.Validate(); !errors.Is(err, ratelimit.ErrInvalidLimit) || !strings.Contains(err.Error(), "refill") {
			t.Errorf("%v: Validate() = %v, want an invalid refill time", lim, err)
		}
	}
}

// TestIssueLimitsRejected checks that the limits of issue 11 item 4, which
// overflowed inside the scripts, no longer pass Validate, so no limiter
// can be built with them.
func TestIssueLimitsRejected(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	for _, lim := range []ratelimit.Limit{
		ratelimit.Per(1, 366*24*time.Hour).WithBurst(1_000_000), // GCRA stored t = -2^63
		ratelimit.PerSecond(1).WithBurst(1 << 40),               // PEXPIRE failed after HSET
		ratelimit.Per(1, ratelimit.MaxPeriod).WithBurst(ratelimit.MaxRate),
		ratelimit.Per(1, 366*24*time.Hour).WithBurst(1000), // refills in 1,003 years
	} {
		err := lim.Validate()
		if !errors.Is(err, ratelimit.ErrInvalidLimit) || !strings.Contains(err.Error(), "refill time") {
			t.Errorf("%v: Validate() = %v, want an invalid refill time", lim, err)
		}
		for _, alg := range All {
			if _, err := NewLimiter(rdb, lim, WithAlgorithm(alg)); !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("%s: NewLimiter(%v): %v, want ErrInvalidLimit", alg.Name(), lim, err)
			}
		}
	}
	if n := rdb.calls.Load(); n != 0 {
		t.Errorf("%d Redis calls, want none", n)
	}
}

// patientServer is realServer with a client that waits up to 30 s for a
// reply: these tests assert values, and a busy machine may be slow.
func patientServer(t *testing.T) (*redis.Client, ratelimit.Keyspace) {
	t.Helper()
	srv, _, ks := realServer(t)
	return srv.Client(func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout = 30*time.Second, 30*time.Second }), ks
}

// clockSuffix and ttlSuffix name the keys from which a clocked script
// reads the time and in which it records the TTL it set.
const (
	clockSuffix = ".clock"
	ttlSuffix   = ".ttl"
)

// runOp runs the op o, clocked as script, for n at now, and its model from
// the state s, and fails t unless both reply the same and Redis then holds
// the model's state. It returns the model's state and reply, and the TTL
// the script set (-1 if it set none).
func runOp[S comparable](t *testing.T, rdb *redis.Client, script *redis.Script, rkey string, o op[S], codec stateCodec[S],
	lim ratelimit.Limit, s S, now int64, n int, where string,
) (S, reply, time.Duration) {
	t.Helper()
	got, ttl, err := runClocked(t, rdb, script, rkey, args(lim, n), now)
	if err != nil {
		t.Fatalf("%s: script: %v", where, err)
	}
	next, want := o.model(lim, s, now, n)
	if got != want {
		t.Fatalf("%s: state %+v: script replied %v, model %v", where, s, got, want)
	}
	h, err := rdb.HGetAll(t.Context(), rkey).Result()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := codec.read(h)
	if err != nil {
		t.Fatalf("%s: stored state: %v", where, err)
	}
	if stored != next {
		t.Fatalf("%s: Redis holds %+v (%v), the model %+v", where, stored, h, next)
	}
	return next, want, ttl
}

// checkTTL checks the TTL ttl that a clocked script set (-1: none): the
// reset time of its reply, resetUS, rounded up to a ms, if it wrote a
// state (kept), and none if it wrote nothing or deleted the key.
func checkTTL(t *testing.T, where string, kept bool, ttl time.Duration, resetUS int64) {
	t.Helper()
	switch wantTTL := time.Duration(ceilInt(float64(resetUS)/1000)) * time.Millisecond; {
	case kept && ttl != wantTTL:
		t.Fatalf("%s: TTL %v, want %v", where, ttl, wantTTL)
	case !kept && ttl != -1:
		t.Fatalf("%s: TTL %v set, want none", where, ttl)
	}
}

// A stateCodec reads the state of one algorithm from its Redis hash and
// checks that it is sane: within the bounds that the limit allows at nowUS.
type stateCodec[S comparable] struct {
	read func(h map[string]string) (S, error)
	sane func(lim ratelimit.Limit, s S, nowUS int64) error
}

// intState returns a reader of a hash of integer fields, in the order
// given, into the state that build makes of their values; an empty hash
// (a missing key) is the zero state.
func intState[S any](build func(v []int64) S, fields ...string) func(map[string]string) (S, error) {
	return func(h map[string]string) (S, error) {
		var zero S
		if len(h) == 0 {
			return zero, nil
		}
		v, err := parseInts(h, fields...)
		if err != nil {
			return zero, err
		}
		return build(v), nil
	}
}

func parseInts(h map[string]string, fields ...string) ([]int64, error) {
	if len(h) != len(fields) {
		return nil, fmt.Errorf("hash %v, want fields %v", h, fields)
	}
	out := make([]int64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseInt(h[f], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s = %q: %v", f, h[f], err)
		}
		out[i] = v
	}
	return out, nil
}

// refillUS returns Burst × Period / Rate in µs, rounded up.
func refillUS(lim ratelimit.Limit) int64 {
	return int64((lim.DurationFor(lim.Burst) + time.Microsecond - 1) / time.Microsecond)
}

var (
	tokenBucketCodec = stateCodec[TokenBucketState]{
		read: func(h map[string]string) (TokenBucketState, error) {
			if len(h) == 0 {
				return TokenBucketState{}, nil
			}
			if len(h) != 2 {
				return TokenBucketState{}, fmt.Errorf("hash %v, want t and ts", h)
			}
			tokens, err := strconv.ParseFloat(h["t"], 64)
			if err != nil {
				return TokenBucketState{}, err
			}
			ts, err := strconv.ParseInt(h["ts"], 10, 64)
			return TokenBucketState{Tokens: tokens, TS: ts}, err
		},
		sane: func(lim ratelimit.Limit, s TokenBucketState, now int64) error {
			if s != (TokenBucketState{}) && (s.TS > now || s.Tokens < -float64(lim.Burst) || s.Tokens >= float64(lim.Burst)) {
				return fmt.Errorf("state %+v at %d", s, now)
			}
			return nil
		},
	}
	gcraCodec = stateCodec[GCRAState]{
		read: intState(func(v []int64) GCRAState { return GCRAState{TAT: v[0], Frac: v[1]} }, "t", "f"),
		sane: func(lim ratelimit.Limit, s GCRAState, now int64) error {
			if s != (GCRAState{}) && (s.TAT-now > refillUS(lim) || s.Frac < 0 || s.Frac >= int64(lim.Rate)) {
				return fmt.Errorf("state %+v at %d: want a TAT at most the refill time %dµs ahead", s, now, refillUS(lim))
			}
			return nil
		},
	}
	fixedWindowCodec = stateCodec[FixedWindowState]{
		read: intState(func(v []int64) FixedWindowState { return FixedWindowState{Window: v[0], Count: v[1]} }, "w", "c"),
		sane: func(lim ratelimit.Limit, s FixedWindowState, now int64) error {
			if s != (FixedWindowState{}) && (s.Window > now/lim.Period.Microseconds() || s.Count <= 0 || s.Count > int64(lim.Burst)) {
				return fmt.Errorf("state %+v at %d", s, now)
			}
			return nil
		},
	}
	slidingWindowCodec = stateCodec[SlidingWindowState]{
		read: intState(func(v []int64) SlidingWindowState { return SlidingWindowState{Window: v[0], Count: v[1], Prev: v[2]} }, "w", "c", "p"),
		sane: func(lim ratelimit.Limit, s SlidingWindowState, now int64) error {
			b := int64(lim.Burst)
			if s != (SlidingWindowState{}) && (s.Window > now/lim.Period.Microseconds() ||
				s.Count < 0 || s.Count > b || s.Prev < 0 || s.Prev > b) {
				return fmt.Errorf("state %+v at %d", s, now)
			}
			return nil
		},
	}
)

// TestRealRedisExtremeLimits runs every script, clocked, on a real
// redis-server with each of extremeLimits: first fixed steps that spend
// and refund whole bursts at the extremes of time (now, one µs later, the
// refill time and around it, in 2026 and as late as allowed), then seeded
// random steps up to 2150, as the differential test does. Each reply must equal the model's,
// the state Redis holds must be the model's and sane, and the TTL the
// script sets must be the model's reset time.
func TestRealRedisExtremeLimits(t *testing.T) {
	rdb, ks := patientServer(t)
	t.Run("alg=token_bucket", func(t *testing.T) { extremes(t, rdb, ks, TokenBucket, tokenBucketOps, tokenBucketCodec, false) })
	t.Run("alg=gcra", func(t *testing.T) { extremes(t, rdb, ks, GCRA, gcraOps, gcraCodec, true) })
	t.Run("alg=fixed_window", func(t *testing.T) { extremes(t, rdb, ks, FixedWindow, fixedWindowOps, fixedWindowCodec, true) })
	t.Run("alg=sliding_window", func(t *testing.T) {
		extremes(t, rdb, ks, SlidingWindow, slidingWindowOps, slidingWindowCodec, true)
	})
}

// extremeSteps is the number of random steps per limit and algorithm.
const extremeSteps = 150

func extremes[S comparable](t *testing.T, rdb *redis.Client, ks ratelimit.Keyspace, alg Algorithm, ops []op[S], codec stateCodec[S], exact bool) {
	scripts := make([]*redis.Script, len(ops))
	for i, o := range ops {
		scripts[i] = clockedSource(t, sourceOf(t, o.script))
	}
	for i, x := range extremeLimits {
		lim := x.lim
		t.Run(x.name, func(t *testing.T) {
			rkey := clientKey(t, ks, fmt.Sprintf("extreme-%d", i), alg)
			var s, zero S
			// do runs op o (an index into ops) for n at now on both sides and
			// compares everything.
			do := func(o int, n int, now int64, where string) reply {
				t.Helper()
				where = fmt.Sprintf("%s: %s n=%d of %v at %d", where, ops[o].name, n, lim, now)
				next, want, ttl := runOp(t, rdb, scripts[o], rkey, ops[o], codec, lim, s, now, n, where)
				if o == 0 && want[1] > int64(lim.Burst) || want[2] > 2*maxRefillUS || want[3] > 2*maxRefillUS {
					t.Fatalf("%s: reply %v out of bounds", where, want)
				}
				if err := codec.sane(lim, next, now); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				// A script that wrote a state set its TTL to the reset time,
				// rounded up to a ms; one that wrote nothing set none.
				wrote := next != s || !ops[o].take || want[0] != 0
				checkTTL(t, where, wrote && next != zero, ttl, want[3])
				s = next
				if o == 0 {
					if exact {
						checkTimes(t, where, ops[0], lim, s, now, n, want, true)
					} else {
						checkTimesWithin(t, where, ops[0], lim, s, now, n, want, tokenBucketEarlyUS)
					}
				}
				return want
			}

			burst := lim.Burst
			refill := refillUS(lim)
			// Start in 2026, and as late as the steps allow: every TAT, at
			// most two refill times after the start, must be below 2^53 µs.
			for _, start := range []int64{t0, min(tFar, 1<<53-2*refill-10)} {
				if err := rdb.Del(t.Context(), rkey).Err(); err != nil {
					t.Fatal(err)
				}
				s = zero
				where := fmt.Sprintf("start %d", start)
				if r := do(0, burst, start, where); r[0] != 1 || r[1] != 0 {
					t.Fatalf("%s: a fresh key denied its burst: %v", where, r)
				}
				last := start
				at := func(us int64) int64 { last = max(last, us); return last } // never back in time
				do(0, 1, at(start), where)
				do(0, burst, at(start+1), where)
				do(len(ops)-1, burst, at(start+1), where) // refund the whole burst
				do(0, max(burst-1, 1), at(start+1), where)
				do(0, burst, at(start+1), where)
				do(0, 1, at(start+refill-1), where)
				do(0, burst, at(start+refill-1), where)
				do(0, burst, at(start+refill), where)
				do(0, burst, at(start+refill+1), where)
				do(len(ops)-1, 1, at(start+refill+1), where)
				do(0, burst, at(start+refill+2), where)
			}

			if err := rdb.Del(t.Context(), rkey).Err(); err != nil {
				t.Fatal(err)
			}
			s = zero
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			now := t0 + rng.Int64N(lim.Period.Microseconds())
			for step := range extremeSteps {
				if g := extremeGap(rng, lim); now+g <= tFar {
					now += g
				}
				o := 0
				if p := rng.IntN(100); p < 20 {
					o = len(ops) - 1
				} else if p < 35 && len(ops) > 2 {
					o = 1
				}
				n := 1
				switch p := rng.IntN(100); {
				case p < 30:
					n = burst
				case p < 45:
					n = max(burst-rng.IntN(3), 1)
				case p < 75:
					n = 1 + rng.IntN(burst)
				}
				do(o, n, now, fmt.Sprintf("step %d", step))
			}
		})
	}
}

// tokenBucketEarlyUS is how early the token bucket's RetryAfter and
// ResetAfter may be at the extreme limits: it counts tokens in float64, and
// with a refill time of decades, rounding the tokens by an ulp moves the
// time they are due by a fraction of a µs.
const tokenBucketEarlyUS = 1

// checkTimesWithin is checkTimes for an algorithm whose times may be up to
// early µs early: a denied request is admitted by RetryAfter + early, and
// the key is back to its full burst by ResetAfter + early.
func checkTimesWithin[S comparable](t *testing.T, where string, check op[S], lim ratelimit.Limit, s S, now int64, n int, r reply, early int64) {
	t.Helper()
	if r[0] == 0 {
		if _, again := check.model(lim, s, now+r[2]+early, n); r[2] <= 0 || again[0] != 1 {
			t.Fatalf("%s: denied with retry after %dµs, and still denied %dµs later: %v", where, r[2], early, again)
		}
	}
	if r[1] > int64(lim.Burst) {
		t.Fatalf("%s: remaining %d exceeds the burst", where, r[1])
	}
	if reset := r[3]; reset > 0 {
		if _, full := check.model(lim, s, now+reset+early, lim.Burst); full[0] != 1 {
			t.Fatalf("%s: burst denied %dµs after the reset time +%dµs: %v", where, early, reset, full)
		}
	}
}

// extremeGap returns the time to the next request: often none, or up to a
// few emission intervals; sometimes up to a period, or up to the whole
// refill time.
func extremeGap(rng *rand.Rand, lim ratelimit.Limit) int64 {
	interval := max(1, int64(lim.Interval()/time.Microsecond))
	switch p := rng.IntN(100); {
	case p < 30:
		return 0
	case p < 55:
		return 1 + rng.Int64N(3*interval)
	case p < 90:
		return 1 + rng.Int64N(lim.Period.Microseconds())
	default:
		return 1 + rng.Int64N(refillUS(lim))
	}
}

// TestRealRedisExtremeLimitsLive runs each algorithm's Limiter, with the
// server's own clock, through a burst, a refund and what follows, for
// each of extremeLimits: no call may fail, and every decision must be in
// range.
func TestRealRedisExtremeLimitsLive(t *testing.T) {
	rdb, ks := patientServer(t)
	ctx := t.Context()
	for _, alg := range All {
		for i, x := range extremeLimits {
			lim := x.lim
			l := newLimiter(t, rdb, lim, WithAlgorithm(alg), WithKeyspace(ks), WithTimeout(5*time.Second))
			key := fmt.Sprintf("live-%d", i)
			where := fmt.Sprintf("%s, %s (%v)", alg.Name(), x.name, lim)
			check := func(d ratelimit.Decision, err error, what string) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %s: %v", where, what, err)
				}
				if d.Remaining < 0 || d.Remaining > lim.Burst || d.RetryAfter < 0 || d.ResetAfter < 0 ||
					d.RetryAfter > 2*ratelimit.MaxRefill || d.ResetAfter > 2*ratelimit.MaxRefill {
					t.Fatalf("%s: %s: decision %+v out of range", where, what, d)
				}
			}
			d, err := l.AllowN(ctx, key, lim.Burst)
			check(d, err, "AllowN(burst)")
			if !d.Allowed {
				t.Fatalf("%s: a fresh key denied its burst: %+v", where, d)
			}
			d, err = l.AllowN(ctx, key, 1)
			check(d, err, "AllowN(1)")
			if err := l.RefundN(ctx, key, lim.Burst); err != nil {
				t.Fatalf("%s: RefundN(burst): %v", where, err)
			}
			for _, n := range []int{lim.Burst, max(lim.Burst/2, 1), 1} {
				d, err = l.AllowN(ctx, key, n)
				check(d, err, fmt.Sprintf("AllowN(%d)", n))
			}
			if pttl, err := rdb.PTTL(ctx, clientKey(t, ks, key, alg)).Result(); err != nil || pttl == -1 {
				t.Fatalf("%s: PTTL %v, %v: want a TTL or no key", where, pttl, err)
			}
		}
	}
}

// TestRealRedisMulDiv checks the scripts' muldiv and divmod on a real
// redis-server against math/big, at the edges of their contracts and at
// random.
func TestRealRedisMulDiv(t *testing.T) {
	rdb, _ := patientServer(t)
	muldiv, err := luaFiles.ReadFile("lua/lib/muldiv.lua")
	if err != nil {
		t.Fatal(err)
	}
	script := redis.NewScript(string(muldiv) + `
local out = {}
for i = 1, #ARGV, 3 do
  local a, b, m = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local q, r
  if b < 0 then
    q, r = divmod(a, m)
  else
    q, r = muldiv(a, b, m)
  end
  out[#out + 1] = string.format('%d', q)
  out[#out + 1] = string.format('%d', r)
end
return out
`)
	const (
		p53 = int64(1) << 53
		p52 = int64(1) << 52
		p45 = int64(1) << 45
	)
	// b < 0: divmod(a, m), for |a| + m <= 2^53; else muldiv(a, b, m), for
	// a, b <= 2^52 and a quotient below 2^53.
	type tc struct{ a, b, m int64 }
	cases := []tc{
		{0, 0, 1}, {1, 1, 1}, {p52, 1, 1}, {p52, 1, p45 - 1}, {p52, p45 - 1, p45 - 1},
		{p45 - 2, p45 - 2, p45 - 1}, {p52 - 1, 3, 3}, {p52/3 + 1, 3, p45 - 1}, {p52 - 1, 2, 2},
		{ratelimit.MaxRate, maxPeriodUS, ratelimit.MaxRate - 1}, {maxRefillUS, ratelimit.MaxRate, maxPeriodUS},
		{ratelimit.MaxRate - 1, ratelimit.MaxRate - 2, ratelimit.MaxRate}, {maxPeriodUS - 1, ratelimit.MaxRate, maxPeriodUS},
		{-(p53 - 7), -1, 7}, {-1, -1, p45 - 1}, {p53 - p45, -1, p45 - 1}, {-(p53 - p45), -1, p45 - 1},
		{-(p53 - 1), -1, 1}, {-5, -1, 5}, {p52, p52, p45 - 1}, {p52 - 1, p45 - 2, p45 - 1}, {p52, 2, 1},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for len(cases) < 3000 {
		m := 1 + rng.Int64N(int64(1)<<(1+rng.IntN(45)))
		m = min(m, p45-1)
		a := rng.Int64N(int64(1) << (1 + rng.IntN(52)))
		b := rng.Int64N(int64(1) << (1 + rng.IntN(52)))
		if rng.IntN(10) == 0 {
			x := rng.Int64N(2*(p53-m)+1) - (p53 - m)
			cases = append(cases, tc{x, -1, m})
			continue
		}
		q := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
		if q.Quo(q, big.NewInt(m)).Cmp(big.NewInt(p53)) < 0 {
			cases = append(cases, tc{a, b, m})
		}
	}
	for start := 0; start < len(cases); start += 500 {
		batch := cases[start:min(start+500, len(cases))]
		argv := make([]any, 0, 3*len(batch))
		for _, c := range batch {
			argv = append(argv, c.a, c.b, c.m)
		}
		got, err := script.Run(t.Context(), rdb, nil, argv...).StringSlice()
		if err != nil || len(got) != 2*len(batch) {
			t.Fatalf("script: %v, %d values for %d cases", err, len(got), len(batch))
		}
		for i, c := range batch {
			x := big.NewInt(c.a)
			if c.b >= 0 {
				x.Mul(x, big.NewInt(c.b))
			}
			q, r := new(big.Int).DivMod(x, big.NewInt(c.m), new(big.Int)) // Euclidean: 0 <= r < m
			if got[2*i] != q.String() || got[2*i+1] != r.String() {
				t.Errorf("a=%d b=%d m=%d: got q=%s r=%s, want q=%s r=%s", c.a, c.b, c.m, got[2*i], got[2*i+1], q, r)
			}
		}
	}
}

// TestLimitRefillTimeBounds checks the derived quantities that the scripts
// rely on: twice the refill time in µs (the longest wait), and the refill
// time added to a clock in 2150 (the furthest TAT), stay below 2^53; the
// TTL in ms below 10^14.
func TestLimitRefillTimeBounds(t *testing.T) {
	const p53 = int64(1) << 53
	if 2*maxRefillUS >= p53 || tFar+maxRefillUS >= p53 || 2*maxRefillUS/1000 >= 1e14 {
		t.Fatalf("MaxRefill %v: 2× in µs %d, from 2150 %d, in ms %d: out of the exact range", ratelimit.MaxRefill,
			2*maxRefillUS, tFar+maxRefillUS, 2*maxRefillUS/1000)
	}
	if 2*ratelimit.MaxRefill < ratelimit.MaxRefill || 2*ratelimit.MaxRefill > math.MaxInt64 {
		t.Fatalf("2 × MaxRefill overflows time.Duration")
	}
	if maxPeriodUS >= int64(1)<<45 {
		t.Fatalf("MaxPeriod %dµs is not below 2^45", maxPeriodUS)
	}
}
