package algorithms

import (
	"math"
	"math/bits"

	"github.com/distributedratelimiter/ratelimit"
)

// This file and model_window.go hold the reference models: pure-Go copies
// of the scripts' maths, with the state made explicit and the Redis
// server's clock replaced by an argument, nowUS, in microseconds since the
// Unix epoch. Tests check that a model and its script agree on every
// reply; fallbacks and local limiters can run a model in place of Redis.
//
// The token bucket and fixed window models mirror their scripts operation
// for operation. Redis's Lua computes in float64, so these models do too, in
// the same order. Every product that feeds an addition or subtraction is
// wrapped in an explicit float64() conversion: the Go spec lets a compiler
// fuse x*y + z into one fused multiply-add (it does on arm64), which rounds
// once where Lua rounds twice; the conversion forbids that.
//
// The GCRA and sliding window scripts compute exactly in whole numbers, with
// the products that could exceed 2^53 split up (muldiv in their Lua); their
// models compute the same quantities exactly in 128-bit integers (u128).
// Being exact, script and model agree without mirroring each other.

// limitArgs returns rate, period in µs and burst as the scripts read them
// from ARGV.
func limitArgs(lim ratelimit.Limit) (rate, period, burst float64) {
	return float64(lim.Rate), float64(lim.Period.Microseconds()), float64(lim.Burst)
}

// floorInt and ceilInt round x as math.floor and math.ceil do in Lua, and
// convert it as Redis converts a Lua number into an integer reply.
func floorInt(x float64) int64 { return int64(math.Floor(x)) }
func ceilInt(x float64) int64  { return int64(math.Ceil(x)) }

// TokenBucketState is what a [TokenBucket] key holds.
//
// The zero value is a missing key, which is a full bucket. Scripts never
// store a state with TS 0, because the Redis server's clock is past 1970.
type TokenBucketState struct {
	// Tokens is the number of tokens in the bucket at TS, possibly
	// fractional.
	Tokens float64
	// TS is the time of the last update, in µs since the Unix epoch.
	TS int64
}

// TokenBucketModel is the reference model of [TokenBucket], [TakeUpTo] and
// [ReturnN] (lua/token_bucket_*.lua): a bucket holds at most Burst tokens
// and gains Rate tokens per Period, continuously.
//
// Its methods are pure functions of their arguments. The zero value has an
// invalid Limit: set Limit, which must pass [ratelimit.Limit.Validate].
// A TokenBucketModel is a plain value, safe for concurrent use.
type TokenBucketModel struct {
	// Limit is the limit the model enforces.
	Limit ratelimit.Limit
}

// tokens returns the tokens of s at nowUS, before any cap.
func (m TokenBucketModel) tokens(s TokenBucketState, nowUS int64) float64 {
	rate, period, _ := limitArgs(m.Limit)
	tokens := s.Tokens
	if nowUS > s.TS {
		tokens = tokens + float64(float64(nowUS-s.TS)*rate/period)
	}
	return tokens
}

// current returns the tokens of s at nowUS, capped at the burst, as the
// take scripts read them.
func (m TokenBucketModel) current(s TokenBucketState, nowUS int64) float64 {
	_, _, burst := limitArgs(m.Limit)
	if s.TS == 0 {
		return burst
	}
	tokens := m.tokens(s, nowUS)
	if tokens > burst {
		tokens = burst
	}
	return tokens
}

// store returns the state the scripts leave for tokens at nowUS (the zero
// state when the bucket is full: the key is deleted) and the time until
// the bucket is full, in µs.
func (m TokenBucketModel) store(tokens float64, nowUS int64) (TokenBucketState, int64) {
	rate, period, burst := limitArgs(m.Limit)
	reset := math.Ceil((burst - tokens) * period / rate)
	if reset > 0 {
		return TokenBucketState{Tokens: tokens, TS: nowUS}, int64(reset)
	}
	return TokenBucketState{}, int64(reset)
}

// Decide takes n tokens from the bucket s at nowUS if it holds them, as
// [TokenBucket]'s Check does, and returns the new state and the decision.
// A denial returns s unchanged. n must be between 1 and the burst.
func (m TokenBucketModel) Decide(s TokenBucketState, nowUS int64, n int) (TokenBucketState, ratelimit.Decision) {
	s, r := m.check(s, nowUS, n)
	return s, r.decision(m.Limit)
}

func (m TokenBucketModel) check(s TokenBucketState, nowUS int64, n int) (TokenBucketState, reply) {
	rate, period, burst := limitArgs(m.Limit)
	fn := float64(n)
	tokens := m.current(s, nowUS)
	if tokens < fn {
		retry := math.Ceil((fn - tokens) * period / rate)
		reset := math.Ceil((burst - tokens) * period / rate)
		return s, reply{0, max(floorInt(tokens), 0), int64(retry), int64(reset)}
	}
	tokens = tokens - fn
	next, reset := m.store(tokens, nowUS)
	return next, reply{1, floorInt(tokens), 0, reset}
}

// TakeUpTo takes as many whole tokens as the bucket s holds at nowUS, up
// to n, as [TakeUpTo] does, and returns the new state and the grant. n must
// be positive.
func (m TokenBucketModel) TakeUpTo(s TokenBucketState, nowUS int64, n int) (TokenBucketState, Grant) {
	s, r := m.takeUpTo(s, nowUS, n)
	return s, r.grant()
}

func (m TokenBucketModel) takeUpTo(s TokenBucketState, nowUS int64, n int) (TokenBucketState, reply) {
	return m.chargeTakeUpTo(s, nowUS, n, Charge{})
}

// Refund gives n tokens back to the bucket s at nowUS, capped at the
// burst, as [ReturnN] and TokenBucket's Refund do, and returns the new
// state and the whole tokens it holds. n must be positive.
func (m TokenBucketModel) Refund(s TokenBucketState, nowUS int64, n int) (TokenBucketState, int) {
	s, r := m.refund(s, nowUS, n)
	return s, int(r[0])
}

func (m TokenBucketModel) refund(s TokenBucketState, nowUS int64, n int) (TokenBucketState, reply) {
	_, _, burst := limitArgs(m.Limit)
	if s.TS == 0 {
		return s, reply{int64(burst), 0, 0, 0}
	}
	tokens := m.tokens(s, nowUS)
	tokens = tokens + float64(n)
	if tokens > burst {
		tokens = burst
	}
	next, reset := m.store(tokens, nowUS)
	return next, reply{max(floorInt(tokens), 0), 0, 0, reset}
}

// GCRAState is what a [GCRA] key holds: the theoretical arrival time (TAT),
// the instant at which the key is back to its full burst, exactly, as
// TAT + Frac/Rate µs.
//
// The zero value is a missing key, which is a full bucket, as is any state
// whose TAT has passed.
type GCRAState struct {
	// TAT is the whole microseconds of the theoretical arrival time, since
	// the Unix epoch.
	TAT int64
	// Frac is the rest of the theoretical arrival time, in units of
	// 1/Rate µs.
	Frac int64
}

// GCRAModel is the reference model of [GCRA] (lua/gcra.lua and
// lua/gcra_refund.lua). Each token costs one emission interval,
// Period/Rate; a request for n tokens is admitted when moving the TAT n
// intervals later keeps it at most Burst intervals ahead of now. It admits
// exactly what [TokenBucketModel] admits, but computes in whole ticks of
// 1/Rate µs, exactly, for every limit that passes
// [ratelimit.Limit.Validate].
//
// Its methods are pure functions of their arguments. The zero value has an
// invalid Limit: set Limit, which must pass [ratelimit.Limit.Validate].
// A GCRAModel is a plain value, safe for concurrent use.
type GCRAModel struct {
	// Limit is the limit the model enforces.
	Limit ratelimit.Limit
}

// ahead returns how far the TAT of s is ahead of nowUS, in ticks of 1/Rate
// µs: 0 when the bucket is full.
func (m GCRAModel) ahead(s GCRAState, nowUS int64) u128 {
	rate := int64(m.Limit.Rate)
	carry, frac := floorDivMod(s.Frac, rate) // Frac >= Rate after a change of rate
	us := s.TAT - nowUS + carry
	if us < 0 {
		return u128{}
	}
	return mul128(uint64(us), uint64(rate)).add(u128{lo: uint64(frac)})
}

// store returns the state the scripts leave when the TAT is after ticks
// ahead of nowUS.
func (m GCRAModel) store(after u128, nowUS int64) GCRAState {
	whole, frac := after.divMod(uint64(m.Limit.Rate))
	return GCRAState{TAT: nowUS + whole, Frac: frac}
}

// Decide spends n tokens of s at nowUS if they are available, as [GCRA]'s
// Check does, and returns the new state and the decision. A denial returns
// s unchanged. n must be between 1 and the burst.
func (m GCRAModel) Decide(s GCRAState, nowUS int64, n int) (GCRAState, ratelimit.Decision) {
	s, r := m.check(s, nowUS, n)
	return s, r.decision(m.Limit)
}

func (m GCRAModel) check(s GCRAState, nowUS int64, n int) (GCRAState, reply) {
	rate, period := uint64(m.Limit.Rate), uint64(m.Limit.Period.Microseconds())
	limit := mul128(uint64(m.Limit.Burst), period)
	ahead := m.ahead(s, nowUS)
	after := ahead.add(mul128(uint64(n), period))
	if limit.less(after) {
		return s, reply{0, wholeLeft(limit, ahead, period), after.sub(limit).ceilDiv(rate), ahead.ceilDiv(rate)}
	}
	return m.store(after, nowUS), reply{1, wholeLeft(limit, after, period), 0, after.ceilDiv(rate)}
}

// Refund moves the TAT of s n emission intervals earlier, but not before
// nowUS, as GCRA's Refund does, and returns the new state and the whole
// tokens the key then has. n must be positive.
func (m GCRAModel) Refund(s GCRAState, nowUS int64, n int) (GCRAState, int) {
	s, r := m.refund(s, nowUS, n)
	return s, int(r[0])
}

func (m GCRAModel) refund(s GCRAState, nowUS int64, n int) (GCRAState, reply) {
	rate, period := uint64(m.Limit.Rate), uint64(m.Limit.Period.Microseconds())
	limit := mul128(uint64(m.Limit.Burst), period)
	ahead, cost := m.ahead(s, nowUS), mul128(uint64(n), period)
	var after u128 // 0 when the refund reaches now
	if cost.less(ahead) {
		after = ahead.sub(cost)
	}
	reset := after.ceilDiv(rate)
	next := GCRAState{}
	if reset > 0 {
		next = m.store(after, nowUS)
	}
	return next, reply{wholeLeft(limit, after, period), 0, 0, reset}
}

// wholeLeft returns the whole tokens of size unit in limit - used: floor((limit
// - used) / unit), or 0 when used exceeds limit.
func wholeLeft(limit, used u128, unit uint64) int64 {
	if limit.less(used) {
		return 0
	}
	q, _ := limit.sub(used).divMod(unit)
	return q
}

// u128 is a whole number below 2^128: the exact models' products of a burst,
// a count or a time by a rate or a period.
type u128 struct{ hi, lo uint64 }

// mul128 returns a × b.
func mul128(a, b uint64) u128 {
	hi, lo := bits.Mul64(a, b)
	return u128{hi, lo}
}

// add returns x + y, which must be below 2^128.
func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}
}

// sub returns x - y, which must not be negative.
func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

// less reports whether x < y.
func (x u128) less(y u128) bool { return x.hi < y.hi || x.hi == y.hi && x.lo < y.lo }

// divMod returns x / m and x % m for m > 0. A quotient beyond the int64
// range, which no valid limit causes, saturates at math.MaxInt64.
func (x u128) divMod(m uint64) (q, r int64) {
	if x.hi >= m {
		return math.MaxInt64, 0
	}
	uq, ur := bits.Div64(x.hi, x.lo, m)
	if uq > math.MaxInt64 {
		return math.MaxInt64, int64(ur)
	}
	return int64(uq), int64(ur)
}

// ceilDiv returns x / m rounded up, saturating as divMod does.
func (x u128) ceilDiv(m uint64) int64 {
	q, r := x.divMod(m)
	if r > 0 && q < math.MaxInt64 {
		q++
	}
	return q
}
