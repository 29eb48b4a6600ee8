package algorithms

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// An op is one script and the model of it.
type op[S comparable] struct {
	name   string
	script *redis.Script
	model  func(lim ratelimit.Limit, s S, nowUS int64, n int) (S, reply)
	// take is set for checks and take_up_to, whose reply starts with what
	// they granted: a reply starting with 0 must have written nothing.
	take bool
}

// The ops of each algorithm; the first is the check.
var (
	tokenBucketOps = []op[TokenBucketState]{
		{"check", tokenBucketTakeScript, func(l ratelimit.Limit, s TokenBucketState, now int64, n int) (TokenBucketState, reply) {
			return TokenBucketModel{l}.check(s, now, n)
		}, true},
		{"take_up_to", tokenBucketTakeUpToScript, func(l ratelimit.Limit, s TokenBucketState, now int64, n int) (TokenBucketState, reply) {
			return TokenBucketModel{l}.takeUpTo(s, now, n)
		}, true},
		{"refund", tokenBucketReturnScript, func(l ratelimit.Limit, s TokenBucketState, now int64, n int) (TokenBucketState, reply) {
			return TokenBucketModel{l}.refund(s, now, n)
		}, false},
	}
	gcraOps = []op[GCRAState]{
		{"check", gcraScript, func(l ratelimit.Limit, s GCRAState, now int64, n int) (GCRAState, reply) {
			return GCRAModel{l}.check(s, now, n)
		}, true},
		{"refund", gcraRefundScript, func(l ratelimit.Limit, s GCRAState, now int64, n int) (GCRAState, reply) {
			return GCRAModel{l}.refund(s, now, n)
		}, false},
	}
	fixedWindowOps = []op[FixedWindowState]{
		{"check", fixedWindowScript, func(l ratelimit.Limit, s FixedWindowState, now int64, n int) (FixedWindowState, reply) {
			return FixedWindowModel{l}.check(s, now, n)
		}, true},
		{"refund", fixedWindowRefundScript, func(l ratelimit.Limit, s FixedWindowState, now int64, n int) (FixedWindowState, reply) {
			return FixedWindowModel{l}.refund(s, now, n)
		}, false},
	}
	slidingWindowOps = []op[SlidingWindowState]{
		{"check", slidingWindowScript, func(l ratelimit.Limit, s SlidingWindowState, now int64, n int) (SlidingWindowState, reply) {
			return SlidingWindowModel{l}.check(s, now, n)
		}, true},
		{"refund", slidingWindowRefundScript, func(l ratelimit.Limit, s SlidingWindowState, now int64, n int) (SlidingWindowState, reply) {
			return SlidingWindowModel{l}.refund(s, now, n)
		}, false},
	}
)

// diffLimits are the limits the differential tests run: periods of 1 s,
// 1 min, 1 h, 90 s and 3 ms, emission intervals that are and are not whole
// microseconds, and bursts above, equal to and below the rate.
var diffLimits = []ratelimit.Limit{
	ratelimit.PerSecond(10),
	ratelimit.PerSecond(1),
	ratelimit.PerSecond(3).WithBurst(5),
	ratelimit.PerMinute(7).WithBurst(2),
	ratelimit.PerHour(100).WithBurst(30),
	ratelimit.Per(4, 90*time.Second).WithBurst(9),
	ratelimit.Per(1000, 3*time.Millisecond).WithBurst(50),
}

// diffSteps is the number of random operations per limit and algorithm.
const diffSteps = 300

func TestDifferential(t *testing.T) {
	// The token bucket computes in fractional tokens: its times may be a
	// microsecond late (never early). The others compute in whole numbers.
	t.Run("alg=token_bucket", func(t *testing.T) { differential(t, tokenBucketOps, false, checkMix[TokenBucketState]()) })
	t.Run("alg=gcra", func(t *testing.T) { differential(t, gcraOps, true, checkMix[GCRAState]()) })
	t.Run("alg=fixed_window", func(t *testing.T) { differential(t, fixedWindowOps, true, checkMix[FixedWindowState]()) })
	t.Run("alg=sliding_window", func(t *testing.T) {
		differential(t, slidingWindowOps, true, checkMix[SlidingWindowState]())
	})
}

// A mix is how a differential test draws its steps: the seed of its random
// sequences, the op and n of each step, and how it checks the times a
// check's reply reports.
type mix[S comparable] struct {
	seed  uint64
	pick  func(rng *rand.Rand, ops []op[S], lim ratelimit.Limit) (op[S], int)
	times func(t *testing.T, where string, check op[S], lim ratelimit.Limit, s S, now int64, n int, r reply, exact bool)
}

// checkMix is TestDifferential's mix: mostly checks, a fifth of the steps
// the last op and, with three ops or more, some of the second; times
// never early.
func checkMix[S comparable]() mix[S] {
	return mix[S]{
		seed: 42,
		pick: func(rng *rand.Rand, ops []op[S], lim ratelimit.Limit) (op[S], int) {
			o := ops[0]
			if p := rng.IntN(100); p < 20 {
				o = ops[len(ops)-1]
			} else if p < 35 && len(ops) > 2 {
				o = ops[1]
			}
			return o, randomN(rng, lim)
		},
		times: checkTimes[S],
	}
}

// randomN returns the n of a request: often 1, else up to the burst.
func randomN(rng *rand.Rand, lim ratelimit.Limit) int {
	if rng.IntN(100) < 40 {
		return 1 + rng.IntN(lim.Burst)
	}
	return 1
}

// differential runs seeded random sequences of ops, drawn as m says, each
// both as a script on miniredis, whose clock it drives, and on the model,
// and checks that the replies are identical, that a denial writes nothing,
// that the key exists exactly while the model says it must, with the TTL
// the model implies, and that the retry and reset times the check reports
// are right: never early and, when exact is set, not late either. A peek
// must leave the state as it was and agree with a check of one token (a
// denial word for word; an admission with the tokens before it), a reset
// leave the key missing, and a charge (settle.go) leave the key in debt of
// at most one burst.
func differential[S comparable](t *testing.T, ops []op[S], exact bool, m mix[S]) {
	for i, lim := range diffLimits {
		t.Run(fmt.Sprintf("limit=%d/%v/burst=%d", lim.Rate, lim.Period, lim.Burst), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), m.seed))
			now := t0 + rng.Int64N(int64(lim.Period/time.Microsecond))
			mr, rdb := miniServer(t, now)
			const rkey = "rl:{c:k}:alg"
			var (
				s        S
				zero     S
				expireAt int64 // when miniredis expires the key, if s != zero
			)
			cur := lim
			for step := range diffSteps {
				if step == diffSteps*2/3 {
					// The limit changes under a live key: the burst drops.
					cur = lim.WithBurst(max(1, lim.Burst/3))
				}
				now += randomGap(rng, cur)
				setNow(mr, now)
				o, n := m.pick(rng, ops, cur)
				where := fmt.Sprintf("step %d at t0%+dµs: %s n=%d of %v", step, now-t0, o.name, n, cur)

				got, err := run(t.Context(), o.script, rdb, rkey, cur, n)
				if err != nil {
					t.Fatalf("%s: script: %v", where, err)
				}
				next, want := o.model(cur, s, now, n)
				if got != want {
					t.Fatalf("%s: state %+v: script replied %v, model %v", where, s, got, want)
				}
				switch o.name {
				case "peek":
					if next != s {
						t.Fatalf("%s: peek changed the state from %+v to %+v", where, s, next)
					}
					checkPeek(t, where, ops[0], cur, s, now, want, exact)
				case "reset":
					if next != zero {
						t.Fatalf("%s: reset left %+v", where, next)
					}
				}
				denied := o.take && want[0] == 0
				if denied && next != s {
					t.Fatalf("%s: denial changed the state from %+v to %+v", where, s, next)
				}
				if !denied && o.name != "peek" && next != zero {
					expireAt = now + ceilInt(float64(want[3])/1000)*1000 // PEXPIRE in whole ms
				}
				prev := s
				s = next
				checkKey(t, mr, rkey, where, s != zero && expireAt > now, expireAt-now)
				if o.name == "check" {
					m.times(t, where, ops[0], cur, s, now, n, want, exact)
				}
				if o.name == "charge" {
					checkDebt(t, where, ops, cur, prev, s, now)
				}
			}
		})
	}
}

// randomGap returns the time to the next request: often none or a fraction
// of an emission interval, sometimes a period or more (a long idle).
func randomGap(rng *rand.Rand, lim ratelimit.Limit) int64 {
	period := lim.Period.Microseconds()
	interval := max(1, period/int64(lim.Rate))
	switch p := rng.IntN(100); {
	case p < 25:
		return 0
	case p < 50:
		return 1 + rng.Int64N(max(1, interval/2))
	case p < 70:
		return 1 + rng.Int64N(2*interval)
	case p < 85:
		return 1 + rng.Int64N(period)
	case p < 95:
		return period/2 + rng.Int64N(3*period)
	default:
		return 3*period + rng.Int64N(7*period)
	}
}

// checkKey checks that the key exists exactly when it should and, if it
// does, that its TTL is ttlUS.
func checkKey(t *testing.T, mr *miniredis.Miniredis, rkey, where string, exists bool, ttlUS int64) {
	t.Helper()
	if got := mr.Exists(rkey); got != exists {
		t.Fatalf("%s: key exists = %v, want %v", where, got, exists)
	}
	if exists {
		if got, want := mr.TTL(rkey), time.Duration(ttlUS)*time.Microsecond; got != want {
			t.Fatalf("%s: TTL %v, want %v", where, got, want)
		}
	}
}

// checkTimes checks, on the model, what a check's reply r promises: a
// denied request is admitted at RetryAfter, and the key is back to its full
// burst at ResetAfter; when exact is set, neither a microsecond earlier.
func checkTimes[S comparable](t *testing.T, where string, check op[S], lim ratelimit.Limit, s S, now int64, n int, r reply, exact bool) {
	t.Helper()
	if r[0] == 0 {
		retry := r[2]
		if retry <= 0 {
			t.Fatalf("%s: denied with retry after %dµs", where, retry)
		}
		if _, again := check.model(lim, s, now+retry, n); again[0] != 1 {
			t.Fatalf("%s: denied again at its retry time +%dµs: %v", where, retry, again)
		}
		if _, early := check.model(lim, s, now+retry-1, n); exact && early[0] != 0 {
			t.Fatalf("%s: admitted 1µs before its retry time +%dµs", where, retry)
		}
	}
	if r[1] > int64(lim.Burst) {
		t.Fatalf("%s: remaining %d exceeds the burst", where, r[1])
	}
	if reset := r[3]; reset > 0 {
		if _, full := check.model(lim, s, now+reset, lim.Burst); full[0] != 1 {
			t.Fatalf("%s: burst denied at the reset time +%dµs: %v", where, reset, full)
		}
		if _, early := check.model(lim, s, now+reset-1, lim.Burst); exact && early[0] != 0 {
			t.Fatalf("%s: burst admitted 1µs before the reset time +%dµs", where, reset)
		}
	}
}

// TestMiniredisTimeInLua checks what the differential test relies on: TIME
// inside a script on miniredis follows SetTime, to the microsecond.
func TestMiniredisTimeInLua(t *testing.T) {
	mr, rdb := miniServer(t, t0)
	for _, now := range []int64{t0, t0 + 1, t0 + 999_999, t0 + 3_600_000_001} {
		setNow(mr, now)
		got, err := rdb.Eval(t.Context(), "local t = redis.call('TIME') return {tonumber(t[1]), tonumber(t[2])}", nil).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0]*1_000_000+got[1] != now {
			t.Fatalf("TIME in Lua after SetTime(%d µs) = %v", now, got)
		}
	}
}
