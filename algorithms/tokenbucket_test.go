package algorithms

import (
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// TestTokenBucketLimitChangeKeepsKey checks that a token bucket key whose
// limit changed to one that refills it later (a larger burst, a lower
// rate) is not forgotten at the TTL its last write set under the old
// limit: a denial under the new limit keeps the key until it is full
// under that one, so that the client gets what the new limit says, not a
// fresh burst. Each step is checked against the bucket the new limit
// holds at that instant.
func TestTokenBucketLimitChangeKeepsKey(t *testing.T) {
	// A step takes n tokens under the new limit, after the old limit
	// spent its whole burst at t0: a check gets all n or none, take_up_to
	// what the bucket holds, up to n.
	type step struct {
		at   time.Duration // since t0
		op   string        // "check" or "take_up_to"
		n    int
		want int // tokens granted
	}
	for _, tc := range []struct {
		name     string
		old, new ratelimit.Limit
		steps    []step
	}{
		{"check/burst 5 to 10", ratelimit.PerSecond(5), ratelimit.PerSecond(5).WithBurst(10), []step{
			{500 * time.Millisecond, "check", 10, 0},  // 2.5 tokens: retry after 1.5 s
			{1001 * time.Millisecond, "check", 10, 0}, // 5.005: the old TTL has passed
			{1999 * time.Millisecond, "check", 10, 0}, // 9.995
			{2000 * time.Millisecond, "check", 10, 10},
		}},
		{"check/rate 10/s to 10/10s", ratelimit.PerSecond(10), ratelimit.Per(10, 10*time.Second), []step{
			{500 * time.Millisecond, "check", 2, 0},  // 0.5 tokens
			{1001 * time.Millisecond, "check", 2, 0}, // 1.001: the old TTL has passed
			{2000 * time.Millisecond, "check", 2, 2},
		}},
		{"take_up_to/burst 5 to 10", ratelimit.PerSecond(5), ratelimit.PerSecond(5).WithBurst(10), []step{
			{100 * time.Millisecond, "take_up_to", 10, 0},  // 0.5 tokens
			{1001 * time.Millisecond, "take_up_to", 10, 5}, // 5.005: the old TTL has passed
		}},
		{"take_up_to/rate 10/s to 10/10s", ratelimit.PerSecond(10), ratelimit.Per(10, 10*time.Second), []step{
			{500 * time.Millisecond, "take_up_to", 10, 0},  // 0.5 tokens
			{1001 * time.Millisecond, "take_up_to", 10, 1}, // 1.001: the old TTL has passed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mr, rdb := miniServer(t, t0)
			const rkey = "rl:{c:k}:token_bucket"
			if d, err := TokenBucket.Check(t.Context(), rdb, rkey, tc.old, tc.old.Burst); err != nil || !d.Allowed {
				t.Fatalf("spend the burst under %v: %+v, %v", tc.old, d, err)
			}
			for _, s := range tc.steps {
				setNow(mr, t0+s.at.Microseconds())
				var got int
				switch s.op {
				case "check":
					d, err := TokenBucket.Check(t.Context(), rdb, rkey, tc.new, s.n)
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed {
						got = s.n
					}
				default:
					g, err := TakeUpTo(t.Context(), rdb, rkey, tc.new, s.n)
					if err != nil {
						t.Fatal(err)
					}
					got = g.Granted
				}
				if got != s.want {
					t.Fatalf("%s of %d at +%v under %v: granted %d, want %d", s.op, s.n, s.at, tc.new, got, s.want)
				}
			}
		})
	}
}

// TestRealRedisTokenBucketLimitChangeTTL checks on a real redis-server
// that a denial under a limit that refills the bucket later than the one
// the key was written under extends the key's TTL to the new time until
// full, and that a denial under an unchanged limit leaves the TTL alone.
func TestRealRedisTokenBucketLimitChangeTTL(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	old := ratelimit.PerHour(5) // full 1 h after the burst is spent
	larger := old.WithBurst(10) // full 2 h after
	rkey := clientKey(t, ks, "k", TokenBucket)
	if d, err := TokenBucket.Check(ctx, rdb, rkey, old, 5); err != nil || !d.Allowed {
		t.Fatalf("spend the burst: %+v, %v", d, err)
	}
	ttl := func() time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, rkey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := ttl()
	if before <= 59*time.Minute || before > time.Hour {
		t.Fatalf("TTL after spending the burst: %v, want about 1 h", before)
	}
	if d, err := TokenBucket.Check(ctx, rdb, rkey, old, 1); err != nil || d.Allowed {
		t.Fatalf("check under the same limit: %+v, %v; want a denial", d, err)
	}
	// PTTL counts whole ms: a TTL set again for the same instant may read
	// up to 1 ms more.
	if got := ttl(); got > before+time.Millisecond {
		t.Fatalf("a denial under the same limit extended the TTL from %v to %v", before, got)
	}
	d, err := TokenBucket.Check(ctx, rdb, rkey, larger, 10)
	if err != nil || d.Allowed {
		t.Fatalf("check under the larger burst: %+v, %v; want a denial", d, err)
	}
	if got := ttl(); got < d.ResetAfter-time.Millisecond {
		t.Fatalf("after a denial under burst 10: TTL %v, want at least its ResetAfter %v", got, d.ResetAfter)
	}
}
