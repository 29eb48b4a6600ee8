package algorithms

import (
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// The table tests below run a model through explicit instants t0+at. Their
// expected values are worked out by hand from each algorithm's definition,
// in the comments; the differential test then ties the scripts to the
// models.

type stepOp int

const (
	decide stepOp = iota
	refund
	takeUpTo
)

// A step is one call of a model and what it must return. Steps run in
// order against one state, so tables of them are called steps.
type step struct {
	at    time.Duration // since t0
	burst int           // if set, the burst of this and later steps: the limit changes
	op    stepOp
	n     int

	allowed   bool // decide
	granted   int  // takeUpTo
	remaining int  // every op
	retry     time.Duration
	reset     time.Duration
}

// modelFuncs binds the operations of one model type, so that one runner
// serves them all.
type modelFuncs[S any] struct {
	decide   func(lim ratelimit.Limit, s S, nowUS int64, n int) (S, ratelimit.Decision)
	refund   func(lim ratelimit.Limit, s S, nowUS int64, n int) (S, int)
	takeUpTo func(lim ratelimit.Limit, s S, nowUS int64, n int) (S, Grant) // nil if the model has none
}

// checkModel is what every model does: decide and refund.
type checkModel[S any] interface {
	Decide(s S, nowUS int64, n int) (S, ratelimit.Decision)
	Refund(s S, nowUS int64, n int) (S, int)
}

// funcsOf binds the operations of the model that of makes for a limit.
func funcsOf[S any, M checkModel[S]](of func(ratelimit.Limit) M) modelFuncs[S] {
	return modelFuncs[S]{
		decide: func(l ratelimit.Limit, s S, now int64, n int) (S, ratelimit.Decision) { return of(l).Decide(s, now, n) },
		refund: func(l ratelimit.Limit, s S, now int64, n int) (S, int) { return of(l).Refund(s, now, n) },
	}
}

var (
	tokenBucketModel = func() modelFuncs[TokenBucketState] {
		m := funcsOf[TokenBucketState](func(l ratelimit.Limit) TokenBucketModel { return TokenBucketModel{l} })
		m.takeUpTo = func(l ratelimit.Limit, s TokenBucketState, now int64, n int) (TokenBucketState, Grant) {
			return TokenBucketModel{l}.TakeUpTo(s, now, n)
		}
		return m
	}()
	gcraModel          = funcsOf[GCRAState](func(l ratelimit.Limit) GCRAModel { return GCRAModel{l} })
	fixedWindowModel   = funcsOf[FixedWindowState](func(l ratelimit.Limit) FixedWindowModel { return FixedWindowModel{l} })
	slidingWindowModel = funcsOf[SlidingWindowState](func(l ratelimit.Limit) SlidingWindowModel { return SlidingWindowModel{l} })
)

// run runs steps in order from a missing key under lim.
func (m modelFuncs[S]) run(t *testing.T, lim ratelimit.Limit, steps []step) {
	t.Helper()
	var s S
	for i, st := range steps {
		if st.burst != 0 {
			lim = lim.WithBurst(st.burst)
		}
		now := t0 + st.at.Microseconds()
		switch st.op {
		case refund:
			var remaining int
			s, remaining = m.refund(lim, s, now, st.n)
			if remaining != st.remaining {
				t.Errorf("step %d (t0+%v, refund %d of %v): remaining %d, want %d", i, st.at, st.n, lim, remaining, st.remaining)
			}
		case takeUpTo:
			var g Grant
			s, g = m.takeUpTo(lim, s, now, st.n)
			want := Grant{Granted: st.granted, Remaining: st.remaining, RetryAfter: st.retry, ResetAfter: st.reset}
			if g != want {
				t.Errorf("step %d (t0+%v, take up to %d of %v):\n got %+v\nwant %+v", i, st.at, st.n, lim, g, want)
			}
		default:
			var d ratelimit.Decision
			s, d = m.decide(lim, s, now, st.n)
			want := ratelimit.Decision{
				Allowed:    st.allowed,
				Limit:      lim,
				Remaining:  st.remaining,
				RetryAfter: st.retry,
				ResetAfter: st.reset,
				Source:     ratelimit.SourceRedis,
			}
			if d != want {
				t.Errorf("step %d (t0+%v, %d of %v):\n got %+v\nwant %+v", i, st.at, st.n, lim, d, want)
			}
		}
	}
}

const (
	µs = time.Microsecond
	ms = time.Millisecond
	s1 = time.Second
)

// bucketTables hold steps on which the token bucket and GCRA agree: they
// admit the same requests and report the same times. Token counts are
// chosen so that the token bucket's floats are exact.
var bucketTables = []struct {
	name  string
	lim   ratelimit.Limit
	steps []step
}{
	{"1s/burst>rate", ratelimit.PerSecond(2).WithBurst(4), []step{ // a token every 500 ms
		{at: 0, n: 1, allowed: true, remaining: 3, reset: 500 * ms},
		{at: 0, n: 3, allowed: true, remaining: 0, reset: 2 * s1},
		{at: 0, n: 1, allowed: false, remaining: 0, retry: 500 * ms, reset: 2 * s1},
		{at: 250 * ms, n: 1, allowed: false, remaining: 0, retry: 250 * ms, reset: 1750 * ms}, // half a token
		{at: 500 * ms, n: 1, allowed: true, remaining: 0, reset: 2 * s1},
		{at: 1500 * ms, n: 2, allowed: true, remaining: 0, reset: 2 * s1},
		{at: 1500 * ms, op: refund, n: 1, remaining: 1},
		{at: 1500 * ms, n: 2, allowed: false, remaining: 1, retry: 500 * ms, reset: 1500 * ms},
		{at: 1750 * ms, op: refund, n: 4, remaining: 4},                   // 1.5 + 4, capped at the burst
		{at: time.Hour, n: 4, allowed: true, remaining: 0, reset: 2 * s1}, // long idle: full
		{at: time.Hour + 125*ms, n: 1, allowed: false, remaining: 0, retry: 375 * ms, reset: 1875 * ms},
	}},
	{"1min/n>1", ratelimit.PerMinute(60), []step{ // a token a second
		{at: 0, n: 60, allowed: true, remaining: 0, reset: 60 * s1},
		{at: 0, n: 1, allowed: false, remaining: 0, retry: s1, reset: 60 * s1},
		{at: 30 * s1, n: 30, allowed: true, remaining: 0, reset: 60 * s1},
		{at: 30*s1 + 500*ms, n: 1, allowed: false, remaining: 0, retry: 500 * ms, reset: 59*s1 + 500*ms},
		{at: 90 * s1, n: 10, allowed: true, remaining: 50, reset: 10 * s1},
		{at: 95 * s1, n: 50, allowed: true, remaining: 5, reset: 55 * s1}, // 55 tokens
	}},
	{"1h/burst<rate", ratelimit.PerHour(3600).WithBurst(10), []step{ // a token a second, at most 10
		{at: 0, n: 10, allowed: true, remaining: 0, reset: 10 * s1},
		{at: 2500 * ms, n: 3, allowed: false, remaining: 2, retry: 500 * ms, reset: 7500 * ms},
		{at: 3 * s1, n: 3, allowed: true, remaining: 0, reset: 10 * s1},
		{at: 3 * s1, op: refund, n: 1, remaining: 1},
		{at: 13 * s1, n: 10, allowed: true, remaining: 0, reset: 10 * s1}, // 11 tokens, capped at 10
	}},
	{"90s", ratelimit.Per(4, 90*time.Second), []step{ // a token every 22.5 s
		{at: 0, n: 4, allowed: true, remaining: 0, reset: 90 * s1},
		{at: 11250 * ms, n: 1, allowed: false, remaining: 0, retry: 11250 * ms, reset: 78750 * ms},
		{at: 22500 * ms, n: 1, allowed: true, remaining: 0, reset: 90 * s1},
		{at: 67500 * ms, n: 2, allowed: true, remaining: 0, reset: 90 * s1},
		{at: 67500 * ms, n: 1, allowed: false, remaining: 0, retry: 22500 * ms, reset: 90 * s1},
	}},
}

func TestTokenBucketModel(t *testing.T) {
	for _, tt := range bucketTables {
		t.Run(tt.name, func(t *testing.T) { tokenBucketModel.run(t, tt.lim, tt.steps) })
	}
	t.Run("burst lowered", func(t *testing.T) {
		// The bucket keeps its tokens, capped at the new burst.
		tokenBucketModel.run(t, ratelimit.PerSecond(4), []step{ // a token every 250 ms
			{at: 0, n: 1, allowed: true, remaining: 3, reset: 250 * ms},
			{at: 0, burst: 2, n: 1, allowed: true, remaining: 1, reset: 250 * ms}, // min(3, 2) - 1
			{at: 0, n: 2, allowed: false, remaining: 1, retry: 250 * ms, reset: 250 * ms},
		})
	})
	t.Run("take up to and return", func(t *testing.T) {
		tokenBucketModel.run(t, ratelimit.PerSecond(4), []step{ // a token every 250 ms
			{at: 0, op: takeUpTo, n: 3, granted: 3, remaining: 1, reset: 750 * ms},
			{at: 0, op: takeUpTo, n: 3, granted: 1, remaining: 0, reset: s1},
			{at: 0, op: takeUpTo, n: 2, granted: 0, remaining: 0, retry: 250 * ms, reset: s1},
			{at: 125 * ms, op: takeUpTo, n: 1, granted: 0, remaining: 0, retry: 125 * ms, reset: 875 * ms},
			{at: 625 * ms, op: takeUpTo, n: 4, granted: 2, remaining: 0, reset: 875 * ms}, // 2.5 tokens
			{at: 625 * ms, op: refund, n: 1, remaining: 1},
			{at: time.Hour, op: refund, n: 1, remaining: 4}, // full: capped
			{at: time.Hour, op: takeUpTo, n: 5, granted: 4, remaining: 0, reset: s1},
		})
	})
}

func TestGCRAModel(t *testing.T) {
	for _, tt := range bucketTables {
		t.Run(tt.name, func(t *testing.T) { gcraModel.run(t, tt.lim, tt.steps) })
	}
	t.Run("burst lowered", func(t *testing.T) {
		// Unlike the token bucket, GCRA keeps the time already spent: three
		// tokens spent put the TAT 750 ms ahead, which a burst of 2 (500
		// ms) does not cover.
		gcraModel.run(t, ratelimit.PerSecond(4), []step{ // a token every 250 ms
			{at: 0, n: 3, allowed: true, remaining: 1, reset: 750 * ms},
			{at: 0, burst: 2, n: 1, allowed: false, remaining: 0, retry: 500 * ms, reset: 750 * ms},
			{at: 500 * ms, n: 1, allowed: true, remaining: 0, reset: 500 * ms},
		})
	})
	t.Run("emission 333⅓µs", func(t *testing.T) {
		// 3 per ms is an emission interval of 333⅓ µs, which no float64
		// holds. GCRA counts in thirds of a µs, so a burst at one instant
		// is admitted in full and the times are exact.
		gcraModel.run(t, ratelimit.Per(3, time.Millisecond), []step{
			{at: 0, n: 1, allowed: true, remaining: 2, reset: 334 * µs}, // ceil(333⅓)
			{at: 0, n: 1, allowed: true, remaining: 1, reset: 667 * µs},
			{at: 0, n: 1, allowed: true, remaining: 0, reset: 1000 * µs},
			{at: 0, n: 1, allowed: false, remaining: 0, retry: 334 * µs, reset: 1000 * µs},
			{at: 333 * µs, n: 1, allowed: false, remaining: 0, retry: 1 * µs, reset: 667 * µs},
			{at: 334 * µs, n: 1, allowed: true, remaining: 0, reset: 1000 * µs},
			{at: 334 * µs, op: refund, n: 2, remaining: 2}, // the TAT moves to t0+334µs+332⅔µs
		})
	})
}

// t0 is 123456 µs into a window of 1 s, 1 min, 1 h and 90 s alike: the
// current window ends in period - 123456 µs.
const intoWindow = 123456 * µs

func TestFixedWindowModel(t *testing.T) {
	t.Run("1s", func(t *testing.T) {
		end := s1 - intoWindow // the first window ends at t0+876544µs
		fixedWindowModel.run(t, ratelimit.PerSecond(3), []step{
			{at: 0, n: 1, allowed: true, remaining: 2, reset: end},
			{at: 0, n: 2, allowed: true, remaining: 0, reset: end},
			{at: 500 * ms, n: 1, allowed: false, remaining: 0, retry: end - 500*ms, reset: end - 500*ms},
			{at: end, n: 1, allowed: true, remaining: 2, reset: s1}, // a new window
			{at: end, op: refund, n: 1, remaining: 3},
			{at: end, op: refund, n: 1, remaining: 3}, // not below 0
			{at: end + s1 - µs, n: 3, allowed: true, remaining: 0, reset: µs},
			{at: end + s1, n: 3, allowed: true, remaining: 0, reset: s1},
			{at: end + time.Hour, n: 2, allowed: true, remaining: 1, reset: s1}, // long idle
		})
	})
	t.Run("1min/burst!=rate/burst lowered", func(t *testing.T) {
		end := time.Minute - intoWindow
		fixedWindowModel.run(t, ratelimit.PerMinute(100).WithBurst(5), []step{
			{at: 0, n: 5, allowed: true, remaining: 0, reset: end},
			{at: 30 * s1, n: 1, allowed: false, remaining: 0, retry: end - 30*s1, reset: end - 30*s1},
			{at: end, n: 2, allowed: true, remaining: 3, reset: time.Minute},
			// 2 spent, now over a burst of 1: nothing remains.
			{at: end, burst: 1, n: 1, allowed: false, remaining: 0, retry: time.Minute, reset: time.Minute},
			{at: end + time.Minute, n: 1, allowed: true, remaining: 0, reset: time.Minute},
		})
	})
	t.Run("90s/n>1", func(t *testing.T) {
		end := 90*s1 - intoWindow
		fixedWindowModel.run(t, ratelimit.Per(10, 90*time.Second).WithBurst(4), []step{
			{at: 0, n: 3, allowed: true, remaining: 1, reset: end},
			{at: time.Hour, n: 4, allowed: true, remaining: 0, reset: end}, // 40 windows later
			{at: time.Hour, op: refund, n: 2, remaining: 2},
			{at: time.Hour, n: 2, allowed: true, remaining: 0, reset: end},
			{at: time.Hour, n: 1, allowed: false, remaining: 0, retry: end, reset: end},
		})
	})
	t.Run("1h", func(t *testing.T) {
		end := time.Hour - intoWindow
		fixedWindowModel.run(t, ratelimit.PerHour(2), []step{
			{at: 0, n: 2, allowed: true, remaining: 0, reset: end},
			{at: 30 * time.Minute, n: 1, allowed: false, remaining: 0, retry: end - 30*time.Minute, reset: end - 30*time.Minute},
		})
	})
}

func TestSlidingWindowModel(t *testing.T) {
	t.Run("1s", func(t *testing.T) {
		w1 := s1 - intoWindow // the second window starts at t0+876544µs
		sliding := ratelimit.PerSecond(10)
		slidingWindowModel.run(t, sliding, []step{
			{at: 0, n: 4, allowed: true, remaining: 6, reset: 2*s1 - intoWindow},
			// Window 1, elapsed 0: estimate 4·1 + 0 = 4.
			{at: w1, n: 1, allowed: true, remaining: 5, reset: 2 * s1},
			// Elapsed ½: estimate 4·½ + 1 = 3, and 3 + 7 = 10.
			{at: w1 + 500*ms, n: 7, allowed: true, remaining: 0, reset: 1500 * ms},
			// Estimate 2 + 8 = 10. Room for 1 once 4·(1-e) <= 1: e = ¾.
			{at: w1 + 500*ms, n: 1, allowed: false, remaining: 0, retry: 250 * ms, reset: 1500 * ms},
			{at: w1 + 750*ms, n: 1, allowed: true, remaining: 0, reset: 1250 * ms},
			// 9 + 2 > 10: wait for the next window, until 9·(1-e) <= 8,
			// e = 1/9 of a second, rounded up to 111112 µs.
			{at: w1 + 750*ms, n: 2, allowed: false, remaining: 0, retry: 250*ms + 111112*µs, reset: 1250 * ms},
			// Estimate 1 + 6 = 7.
			{at: w1 + 750*ms, op: refund, n: 3, remaining: 3},
			{at: w1 + 750*ms + time.Hour, n: 10, allowed: true, remaining: 0, reset: 1250 * ms}, // long idle
			// A burst of 5 under 10 spent: wait for the next window until
			// 10·(1-e) <= 4, e = 0.6 s.
			{at: w1 + 750*ms + time.Hour, burst: 5, n: 1, allowed: false, remaining: 0, retry: 850 * ms, reset: 1250 * ms},
		})
	})
	t.Run("1min", func(t *testing.T) {
		w1 := time.Minute - intoWindow
		slidingWindowModel.run(t, ratelimit.PerMinute(2), []step{
			{at: 0, n: 2, allowed: true, remaining: 0, reset: 2*time.Minute - intoWindow},
			// Elapsed ¾: estimate 2·¼ = ½, and ½ + 1 <= 2.
			{at: w1 + 45*s1, n: 1, allowed: true, remaining: 0, reset: 75 * s1},
			// Estimate 1½: room for 1 more only when the previous window
			// has no weight left, at the end of this one.
			{at: w1 + 45*s1, n: 1, allowed: false, remaining: 0, retry: 15 * s1, reset: 75 * s1},
		})
	})
	t.Run("1h", func(t *testing.T) {
		w1 := time.Hour - intoWindow
		slidingWindowModel.run(t, ratelimit.PerHour(4), []step{
			{at: 0, n: 4, allowed: true, remaining: 0, reset: 2*time.Hour - intoWindow},
			// Elapsed 0: estimate 4; room for 1 once 4·(1-e) <= 3, at e = ¼.
			// The current window is empty, so the estimate is zero when it
			// ends.
			{at: w1, n: 1, allowed: false, remaining: 0, retry: 15 * time.Minute, reset: time.Hour},
			{at: w1 + 15*time.Minute, n: 1, allowed: true, remaining: 0, reset: 105 * time.Minute},
		})
	})
	t.Run("90s/burst!=rate", func(t *testing.T) {
		w1 := 90*s1 - intoWindow
		slidingWindowModel.run(t, ratelimit.Per(6, 90*time.Second).WithBurst(3), []step{
			{at: 0, n: 3, allowed: true, remaining: 0, reset: 180*s1 - intoWindow},
			// Elapsed ⅓: estimate 3·⅔ = 2, and 2 + 1 <= 3.
			{at: w1 + 30*s1, n: 1, allowed: true, remaining: 0, reset: 150 * s1},
			// Estimate 3: room for 1 once 3·(1-e) + 1 <= 2, at e = ⅔.
			{at: w1 + 30*s1, n: 1, allowed: false, remaining: 0, retry: 30 * s1, reset: 150 * s1},
			// Two windows later both counts have gone.
			{at: w1 + 180*s1, n: 3, allowed: true, remaining: 0, reset: 180 * s1},
		})
	})
}

// TestModelsRefundMissingKey checks that a refund to a missing key, which
// is full, changes nothing.
func TestModelsRefundMissingKey(t *testing.T) {
	lim := ratelimit.PerSecond(5)
	if s, rem := (TokenBucketModel{lim}).Refund(TokenBucketState{}, t0, 2); s != (TokenBucketState{}) || rem != 5 {
		t.Errorf("token bucket: %+v, %d", s, rem)
	}
	if s, rem := (GCRAModel{lim}).Refund(GCRAState{}, t0, 2); s != (GCRAState{}) || rem != 5 {
		t.Errorf("gcra: %+v, %d", s, rem)
	}
	if s, rem := (FixedWindowModel{lim}).Refund(FixedWindowState{}, t0, 2); s != (FixedWindowState{}) || rem != 5 {
		t.Errorf("fixed window: %+v, %d", s, rem)
	}
	if s, rem := (SlidingWindowModel{lim}).Refund(SlidingWindowState{}, t0, 2); s != (SlidingWindowState{}) || rem != 5 {
		t.Errorf("sliding window: %+v, %d", s, rem)
	}
}
