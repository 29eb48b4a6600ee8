package algorithms

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// The ops of the quota operations of each algorithm, as the differential
// tests run them: check and refund (from diff_test.go), peek, reset and
// charge.
// quotaOps[i][0] is the check.
var (
	tokenBucketQuotaOps = []op[TokenBucketState]{
		tokenBucketOps[0], tokenBucketOps[2],
		{"peek", tokenBucketPeekScript, func(l ratelimit.Limit, s TokenBucketState, now int64, _ int) (TokenBucketState, reply) {
			return s, TokenBucketModel{l}.peek(s, now)
		}, false},
		{"reset", resetScript, resetModel[TokenBucketState], false},
		{"charge", tokenBucketChargeScript, func(l ratelimit.Limit, s TokenBucketState, now int64, n int) (TokenBucketState, reply) {
			return TokenBucketModel{l}.charge(s, now, n)
		}, false},
	}
	gcraQuotaOps = []op[GCRAState]{
		gcraOps[0], gcraOps[1],
		{"peek", gcraPeekScript, func(l ratelimit.Limit, s GCRAState, now int64, _ int) (GCRAState, reply) {
			return s, GCRAModel{l}.peek(s, now)
		}, false},
		{"reset", resetScript, resetModel[GCRAState], false},
		{"charge", gcraChargeScript, func(l ratelimit.Limit, s GCRAState, now int64, n int) (GCRAState, reply) {
			return GCRAModel{l}.charge(s, now, n)
		}, false},
	}
	fixedWindowQuotaOps = []op[FixedWindowState]{
		fixedWindowOps[0], fixedWindowOps[1],
		{"peek", fixedWindowPeekScript, func(l ratelimit.Limit, s FixedWindowState, now int64, _ int) (FixedWindowState, reply) {
			return s, FixedWindowModel{l}.peek(s, now)
		}, false},
		{"reset", resetScript, resetModel[FixedWindowState], false},
		{"charge", fixedWindowChargeScript, func(l ratelimit.Limit, s FixedWindowState, now int64, n int) (FixedWindowState, reply) {
			return FixedWindowModel{l}.charge(s, now, n)
		}, false},
	}
	slidingWindowQuotaOps = []op[SlidingWindowState]{
		slidingWindowOps[0], slidingWindowOps[1],
		{"peek", slidingWindowPeekScript, func(l ratelimit.Limit, s SlidingWindowState, now int64, _ int) (SlidingWindowState, reply) {
			return s, SlidingWindowModel{l}.peek(s, now)
		}, false},
		{"reset", resetScript, resetModel[SlidingWindowState], false},
		{"charge", slidingWindowChargeScript, func(l ratelimit.Limit, s SlidingWindowState, now int64, n int) (SlidingWindowState, reply) {
			return SlidingWindowModel{l}.charge(s, now, n)
		}, false},
	}
)

// resetModel is the model of reset.lua: the key is gone, and full.
func resetModel[S comparable](l ratelimit.Limit, _ S, _ int64, _ int) (S, reply) {
	var zero S
	return zero, reply{int64(l.Burst), 0, 0, 0}
}

// findOp returns the op of ops named name, or nil.
func findOp[S comparable](ops []op[S], name string) *op[S] {
	for i := range ops {
		if ops[i].name == name {
			return &ops[i]
		}
	}
	return nil
}

func TestQuotaDifferential(t *testing.T) {
	t.Run("alg=token_bucket", func(t *testing.T) { differential(t, tokenBucketQuotaOps, false, quotaMix[TokenBucketState]()) })
	t.Run("alg=gcra", func(t *testing.T) { differential(t, gcraQuotaOps, true, quotaMix[GCRAState]()) })
	t.Run("alg=fixed_window", func(t *testing.T) { differential(t, fixedWindowQuotaOps, true, quotaMix[FixedWindowState]()) })
	t.Run("alg=sliding_window", func(t *testing.T) {
		differential(t, slidingWindowQuotaOps, true, quotaMix[SlidingWindowState]())
	})
}

// quotaMix is TestQuotaDifferential's mix: half the steps run the check,
// the others one op of ops at random, a charge up to three bursts' worth
// of tokens; the token bucket's times may be tokenBucketEarlyUS early
// (see checkTimesOf).
func quotaMix[S comparable]() mix[S] {
	return mix[S]{
		seed: 14,
		pick: func(rng *rand.Rand, ops []op[S], lim ratelimit.Limit) (op[S], int) {
			o := ops[0]
			if rng.IntN(2) == 0 {
				o = ops[1+rng.IntN(len(ops)-1)]
			}
			n := randomN(rng, lim)
			if o.name == "charge" {
				n = chargeN(lim, 1+rng.Int64N(3*int64(lim.Burst)))
			}
			return o, n
		},
		times: checkTimesOf[S],
	}
}

// checkPeek checks a peek's reply p against the check's model at now.
func checkPeek[S comparable](t *testing.T, where string, check op[S], lim ratelimit.Limit, s S, now int64, p reply, exact bool) {
	t.Helper()
	_, c := check.model(lim, s, now, 1)
	if p[0] != c[0] {
		t.Fatalf("%s: peek says available=%d, a check of 1 allowed=%d", where, p[0], c[0])
	}
	if c[0] == 0 && p != c {
		t.Fatalf("%s: peek %v, a denied check of 1 %v", where, p, c)
	}
	if c[0] == 1 && (p[1] < c[1] || p[1] > c[1]+1 || p[2] != 0) {
		t.Fatalf("%s: peek %v, an admitted check of 1 %v", where, p, c)
	}
	if p[0] == 0 {
		checkTimesOf(t, where, check, lim, s, now, 1, p, exact)
	}
}

// checkTimesOf is checkTimes for an exact algorithm, and checkTimesWithin
// tokenBucketEarlyUS for the token bucket, whose float64 times can be a
// µs early, at ordinary limits too (this test's sequences found 4/1m30s
// with its burst lowered to 3).
func checkTimesOf[S comparable](t *testing.T, where string, check op[S], lim ratelimit.Limit, s S, now int64, n int, r reply, exact bool) {
	t.Helper()
	if exact {
		checkTimes(t, where, check, lim, s, now, n, r, true)
	} else {
		checkTimesWithin(t, where, check, lim, s, now, n, r, tokenBucketEarlyUS)
	}
}

// TestRealRedisQuotaOps runs the quota ops, clocked, on a real
// redis-server with the extreme limits of overflow_test.go and the
// differential test's limits: each reply must equal the model's and the
// hash Redis holds the model's state, and a script that writes sets the
// TTL the model implies.
func TestRealRedisQuotaOps(t *testing.T) {
	rdb, ks := patientServer(t)
	t.Run("alg=token_bucket", func(t *testing.T) { realRedisOps(t, rdb, ks, TokenBucket, tokenBucketQuotaOps, tokenBucketCodec) })
	t.Run("alg=gcra", func(t *testing.T) { realRedisOps(t, rdb, ks, GCRA, gcraQuotaOps, gcraCodec) })
	t.Run("alg=fixed_window", func(t *testing.T) { realRedisOps(t, rdb, ks, FixedWindow, fixedWindowQuotaOps, fixedWindowCodec) })
	t.Run("alg=sliding_window", func(t *testing.T) {
		realRedisOps(t, rdb, ks, SlidingWindow, slidingWindowQuotaOps, slidingWindowCodec)
	})
}

func realRedisOps[S comparable](t *testing.T, rdb *redis.Client, ks ratelimit.Keyspace, alg Algorithm, ops []op[S], codec stateCodec[S]) {
	scripts := make([]*redis.Script, len(ops))
	for i, o := range ops {
		scripts[i] = clockedSource(t, sourceOf(t, o.script))
	}
	limits := append([]ratelimit.Limit(nil), diffLimits...)
	for _, x := range extremeLimits {
		limits = append(limits, x.lim)
	}
	for i, lim := range limits {
		t.Run(fmt.Sprintf("limit=%d/%v/burst=%d", lim.Rate, lim.Period, lim.Burst), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 41))
			rkey := clientKey(t, ks, fmt.Sprintf("quota-%d", i), alg)
			var s, zero S
			now := []int64{t0, max(t0, min(tFar, 1<<53-2*refillUS(lim)-10))}[i%2]
			for step := range extremeSteps {
				if rng.IntN(3) > 0 {
					now += randomGap(rng, lim)
				}
				o := rng.IntN(len(ops))
				n := 1 + rng.IntN(lim.Burst)
				if rng.IntN(2) == 0 {
					n = []int{1, lim.Burst}[rng.IntN(2)]
				}
				if ops[o].name == "charge" {
					n = chargeN(lim, []int64{1, int64(lim.Burst), 2 * int64(lim.Burst), ratelimit.MaxRate}[rng.IntN(4)])
				}
				where := fmt.Sprintf("step %d at %d: %s n=%d", step, now, ops[o].name, n)
				next, want, ttl := runOp(t, rdb, scripts[o], rkey, ops[o], codec, lim, s, now, n, where)
				if want[2] > 2*maxRefillUS || want[3] > 2*maxRefillUS {
					t.Fatalf("%s: reply %v out of bounds", where, want)
				}
				wrote := !(ops[o].take && want[0] == 0) && ops[o].name != "peek"
				checkTTL(t, where, wrote && next != zero, ttl, want[3])
				s = next
			}
		})
	}
}

// chargeN returns the n that a charge of tokens passes to its script, as
// Limiter.SettleN does.
func chargeN(lim ratelimit.Limit, tokens int64) int { return int(min(tokens, 2*int64(lim.Burst))) }

// checkDebt checks that a charge left the key s in debt of at most one
// burst: it admits a whole burst again within twice its refill time (or
// two windows), unless the key was deeper in debt before the charge (prev),
// under a larger burst.
func checkDebt[S comparable](t *testing.T, where string, ops []op[S], lim ratelimit.Limit, prev, s S, now int64) {
	t.Helper()
	later := now + max(2*refillUS(lim), 2*lim.Period.Microseconds())
	if _, r := ops[0].model(lim, prev, later, lim.Burst); r[0] != 1 {
		return
	}
	if _, r := ops[0].model(lim, s, later, lim.Burst); r[0] != 1 {
		t.Fatalf("%s: state %+v: the whole burst is denied %dµs later: %v", where, s, later-now, r)
	}
}
