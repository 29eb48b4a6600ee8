package algorithms

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// TestDifferentialCharge runs seeded random sequences of take_up_to with
// and without a charge, checks and give-backs on one token bucket key, on
// miniredis (whose clock it drives) and on the model, and requires
// identical replies and states: the debt a charge leaves must read the same
// in every token bucket script.
func TestDifferentialCharge(t *testing.T) {
	for i, lim := range diffLimits {
		t.Run(fmt.Sprintf("limit=%d/%v/burst=%d", lim.Rate, lim.Period, lim.Burst), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			now := t0
			mr, rdb := miniServer(t, now)
			const rkey = "rl:{c:k}:token_bucket"
			m := TokenBucketModel{Limit: lim}
			var s TokenBucketState
			var expireAt int64 // when the key expires, if s is not zero
			for step := range diffSteps {
				now += randomGap(rng, lim)
				setNow(mr, now)
				if now >= expireAt {
					s = TokenBucketState{} // expired: the key is missing
				}
				prev := s
				n := 1 + rng.IntN(lim.Burst)
				where := fmt.Sprintf("step %d at t0%+dµs n=%d", step, now-t0, n)
				var got, want reply
				var err error
				switch p := rng.IntN(100); {
				case p < 40:
					c := Charge{Tokens: rng.Int64N(3 * int64(lim.Burst)), Seen: -1}
					if rng.IntN(2) == 0 {
						c.Seen = rng.Int64N(int64(lim.Burst) + 1)
						c.Over = time.Duration(rng.Int64N(int64(2 * lim.Period)))
					}
					if rng.IntN(2) == 0 {
						c.Tokens = 0
					}
					if rng.IntN(2) == 0 {
						c.Ahead = 1 + rng.Int64N(int64(lim.Burst))
					}
					if rng.IntN(2) == 0 {
						c.Short = 1 + rng.Int64N(int64(n))
					}
					where += fmt.Sprintf(" charge %+v", c)
					var g Grant
					g, err = ChargeTakeUpTo(t.Context(), rdb, rkey, lim, n, c)
					got = reply{int64(g.Granted), int64(g.Remaining), g.RetryAfter.Microseconds(), g.ResetAfter.Microseconds()}
					s, want = m.chargeTakeUpTo(s, now, n, c)
				case p < 60:
					got, err = run(t.Context(), tokenBucketTakeUpToScript, rdb, rkey, lim, n)
					s, want = m.takeUpTo(s, now, n)
				case p < 80:
					got, err = run(t.Context(), tokenBucketTakeScript, rdb, rkey, lim, n)
					s, want = m.check(s, now, n)
				default:
					got, err = run(t.Context(), tokenBucketReturnScript, rdb, rkey, lim, n)
					s, want = m.refund(s, now, n)
				}
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if got != want {
					t.Fatalf("%s: script replied %v, model %v", where, got, want)
				}
				if s != prev && s != (TokenBucketState{}) {
					expireAt = now + ceilInt(float64(want[3])/1000)*1000 // PEXPIRE in whole ms
				}
				if exists := s != (TokenBucketState{}); mr.Exists(rkey) != exists {
					t.Fatalf("%s: key exists = %v, model state %+v", where, mr.Exists(rkey), s)
				}
			}
		})
	}
}

// TestChargeShiftsAdmissions checks the charge's arithmetic on a real
// redis-server: a charge larger than what the bucket earned during an
// outage leaves a debt (at most one burst) that later takes pay off; a
// smaller one leaves the rest; a missing key is rebuilt from what the
// caller saw, or, with nothing seen, is full and not charged.
func TestChargeShiftsAdmissions(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	lim := ratelimit.PerSecond(1000).WithBurst(1000)
	rkey, _ := ks.ClientKey("k", TokenBucket.Name())

	if g, err := TakeUpTo(ctx, rdb, rkey, lim, lim.Burst); err != nil || g.Granted != lim.Burst {
		t.Fatalf("emptying the bucket: %+v, %v", g, err)
	}
	time.Sleep(200 * time.Millisecond) // the outage: the bucket earns ≥ 200
	// The fallback admitted 5,000 over the outage: far more than it earned,
	// so the bucket ends in debt, at most one burst.
	g, err := ChargeTakeUpTo(ctx, rdb, rkey, lim, 10, Charge{Tokens: 5000})
	if err != nil || g.Granted != 0 || g.Remaining != 0 {
		t.Fatalf("charge beyond the earnings: %+v, %v; want nothing granted", g, err)
	}
	// In debt of about one burst: one token is at least ~one second away.
	if g.RetryAfter < 900*time.Millisecond {
		t.Fatalf("retry after %v: the debt was not kept (want ≥ 900ms for a debt of ~1000 at 1000/s)", g.RetryAfter)
	}
	d, err := TokenBucket.Check(ctx, rdb, rkey, lim, 1)
	if err != nil || d.Allowed {
		t.Fatalf("a check while in debt: %+v, %v; want a denial", d, err)
	}

	// A charge smaller than what the bucket earned meanwhile.
	rkey2, _ := ks.ClientKey("k2", TokenBucket.Name())
	if g, err := TakeUpTo(ctx, rdb, rkey2, lim, lim.Burst); err != nil || g.Granted != lim.Burst {
		t.Fatalf("emptying the bucket: %+v, %v", g, err)
	}
	time.Sleep(300 * time.Millisecond) // earns ≥ 300
	g, err = ChargeTakeUpTo(ctx, rdb, rkey2, lim, lim.Burst, Charge{Tokens: 200})
	if err != nil || g.Granted < 100 || g.Granted > 400 {
		t.Fatalf("granted %+v, %v after charging 200 of ≥300 earned, want the rest (about 100)", g, err)
	}

	// A missing key (Redis restarted empty) with nothing seen is not
	// charged: a full bucket.
	rkey3, _ := ks.ClientKey("k3", TokenBucket.Name())
	g, err = ChargeTakeUpTo(ctx, rdb, rkey3, lim, lim.Burst, Charge{Tokens: 300, Seen: -1})
	if err != nil || g.Granted != lim.Burst {
		t.Fatalf("missing key, 300 charged: %+v, %v; want the full burst granted", g, err)
	}
	// With what the caller saw before the outage, it is rebuilt: 100 seen,
	// 500 earned over 500 ms, 300 charged: 300 left, not a fresh burst.
	rkey4, _ := ks.ClientKey("k4", TokenBucket.Name())
	g, err = ChargeTakeUpTo(ctx, rdb, rkey4, lim, lim.Burst, Charge{Tokens: 300, Over: 500 * time.Millisecond, Seen: 100})
	if err != nil || g.Granted != 300 {
		t.Fatalf("missing key rebuilt from 100 seen + 500 earned − 300 charged: %+v, %v; want 300 granted", g, err)
	}
}

// TestGrantAhead: on a real redis-server, an empty bucket grants ahead
// tokens that are earned one interval apart, each grant's first token
// after the previous grant's last, and no more than the ahead window. The
// limit earns one token a second, so the milliseconds between the calls
// of a loaded machine change nothing.
func TestGrantAhead(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	lim := ratelimit.Per(1000, 1000*time.Second).WithBurst(1000) // 1 s per token
	rkey, _ := ks.ClientKey("k", TokenBucket.Name())
	if g, err := TakeUpTo(ctx, rdb, rkey, lim, lim.Burst); err != nil || g.Granted != lim.Burst {
		t.Fatalf("emptying the bucket: %+v, %v", g, err)
	}
	ahead := Charge{Ahead: 100}
	g1, err := ChargeTakeUpTo(ctx, rdb, rkey, lim, 50, ahead)
	if err != nil || g1.Granted != 50 || g1.RetryAfter <= 0 || g1.RetryAfter > time.Second {
		t.Fatalf("first grant ahead: %+v, %v; want 50 tokens, the first due within 1 s", g1, err)
	}
	g2, err := ChargeTakeUpTo(ctx, rdb, rkey, lim, 80, ahead)
	// 50 already promised: 50 more fit the window of 100, the first due
	// after the first grant's 50.
	if err != nil || g2.Granted != 50 || g2.RetryAfter < 49*time.Second || g2.RetryAfter > 51*time.Second {
		t.Fatalf("second grant ahead: %+v, %v; want 50 tokens, the first due ~50 s out", g2, err)
	}
	g3, err := ChargeTakeUpTo(ctx, rdb, rkey, lim, 10, ahead)
	if err != nil || g3.Granted != 0 || g3.RetryAfter < 900*time.Millisecond {
		t.Fatalf("third grant ahead: %+v, %v; want nothing: the window is full for about a second", g3, err)
	}
	// A plain take sees the debt: nothing for ~100 s.
	if d, err := TokenBucket.Check(ctx, rdb, rkey, lim, 1); err != nil || d.Allowed || d.RetryAfter < 99*time.Second {
		t.Fatalf("a check after 100 tokens granted ahead: %+v, %v; want a denial ~100 s long", d, err)
	}
}

// TestLongLease: on a real redis-server, a long lease (Charge.Short) gets
// at most half of what the bucket holds, and only its short part from a
// bucket under a quarter full, whatever the caller saw before. The limit earns one
// token every 1,000 s, so the time between calls changes nothing.
func TestLongLease(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	lim := ratelimit.Per(1, 1000*time.Second).WithBurst(1000)
	rkey, _ := ks.ClientKey("k", TokenBucket.Name())
	for _, c := range []struct {
		n, short int
		want     int // granted
		left     int // remaining after
	}{
		{400, 10, 400, 600}, // full: less than half of it
		{900, 10, 300, 300}, // over half full: half of it
		{900, 10, 150, 150}, // 30% full: half of it
		{900, 10, 10, 140},  // under a quarter full: the short part only
		{100, 0, 100, 40},   // no long lease: up to n
		{900, 100, 40, 0},   // short, but the bucket has less
	} {
		g, err := ChargeTakeUpTo(ctx, rdb, rkey, lim, c.n, Charge{Short: int64(c.short)})
		if err != nil || g.Granted != c.want || g.Remaining != c.left {
			t.Fatalf("take up to %d (short %d): %+v, %v; want %d granted, %d left", c.n, c.short, g, err, c.want, c.left)
		}
	}
	// At the boundary: exactly a quarter full leases long, one token less
	// does not.
	for _, c := range []struct{ left, want int }{{250, 125}, {249, 10}} {
		k, _ := ks.ClientKey(fmt.Sprintf("edge%d", c.left), TokenBucket.Name())
		if g, err := TakeUpTo(ctx, rdb, k, lim, lim.Burst-c.left); err != nil || g.Remaining != c.left {
			t.Fatalf("leaving %d: %+v, %v", c.left, g, err)
		}
		if g, err := ChargeTakeUpTo(ctx, rdb, k, lim, 900, Charge{Short: 10}); err != nil || g.Granted != c.want {
			t.Fatalf("long lease from %d left: %+v, %v; want %d", c.left, g, err, c.want)
		}
	}
}
