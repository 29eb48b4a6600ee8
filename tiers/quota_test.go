package tiers_test

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// quotaConfig is a tier with a per-client limit and a shared one.
func quotaConfig() tiers.Config {
	return tiers.Config{DefaultTier: "free", Tiers: []tiers.Tier{{Name: "free", Limits: []tiers.Limit{
		tiers.Client("minute", ratelimit.PerMinute(100)),
		tiers.Shared("all", ratelimit.PerMinute(1000)),
	}}}}
}

// remaining returns what Inspect reports for each limit of key's tier.
func remaining(t *testing.T, l *tiers.Limiter, key string) [2]int {
	t.Helper()
	res, err := l.Inspect(t.Context(), key, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Limits) != 2 || !res.Limits[0].Checked || !res.Limits[1].Checked {
		t.Fatalf("Inspect: %+v", res)
	}
	return [2]int{res.Limits[0].Decision.Remaining, res.Limits[1].Decision.Remaining}
}

// TestTierQuota checks Settle, Inspect and Reset across the limits of a
// tier on miniredis (clock frozen): a settle reaches every limit, the
// shared one included; Inspect combines like Check; Reset refills the
// client's own limits and leaves the tier's shared budget alone.
func TestTierQuota(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.SetTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l := newLimiter(t, tiers.Direct(rdb), quotaConfig())
	ctx := t.Context()

	if got := remaining(t, l, "alice"); got != [2]int{100, 1000} {
		t.Fatalf("a new client: %v", got)
	}
	if res, err := l.Check(ctx, "alice", "", 10); err != nil || !res.Decision.Allowed {
		t.Fatal(res, err)
	}
	if err := l.SettleN(ctx, "alice", 10, 40); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, l, "alice"); got != [2]int{60, 960} {
		t.Fatalf("after settling 10 as 40: %v, want [60 960]", got)
	}
	if err := l.Settle(ctx, "alice", "free", 30, 0); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, l, "alice"); got != [2]int{90, 990} {
		t.Fatalf("after settling 30 as 0: %v, want [90 990]", got)
	}
	// Into debt: the client limit denies, and Inspect says so.
	if err := l.SettleN(ctx, "alice", 0, 150); err != nil {
		t.Fatal(err)
	}
	res, err := l.Inspect(ctx, "alice", "")
	if err != nil || res.Decision.Allowed || res.Decision.RetryAfter <= 0 || res.Decision.Limit != ratelimit.PerMinute(100) {
		t.Fatalf("Inspect in debt: %+v, %v", res.Decision, err)
	}
	if d, err := l.Peek(ctx, "alice"); err != nil || d != res.Decision {
		t.Fatalf("Peek %+v, %v; want Inspect's %+v", d, err, res.Decision)
	}
	if d, err := l.Allow(ctx, "alice"); err != nil || d.Allowed {
		t.Fatalf("Allow in debt: %+v, %v", d, err)
	}
	// Reset: the client's own limit only.
	if err := l.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, l, "alice"); got != [2]int{100, 840} {
		t.Fatalf("after Reset: %v, want [100 840]: the shared budget keeps what alice spent", got)
	}
	if d, err := l.Allow(ctx, "alice"); err != nil || !d.Allowed {
		t.Fatalf("Allow after Reset: %+v, %v", d, err)
	}

	if err := l.SettleN(ctx, "", 1, 2); !errors.Is(err, ratelimit.ErrInvalidKey) {
		t.Errorf("SettleN of an empty key: %v", err)
	}
	if _, err := l.Inspect(ctx, "alice", "gold"); !errors.Is(err, tiers.ErrUnknownTier) {
		t.Errorf("Inspect in an unknown tier: %v", err)
	}
	if err := l.SettleN(ctx, "alice", 101, 101); !errors.Is(err, ratelimit.ErrInvalidN) {
		t.Errorf("SettleN above the burst: %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(ctx, "alice"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Reset after Close: %v", err)
	}
}

// TestTierQuotaUnsupported checks that limiters that cannot settle, peek
// or reset make the calls fail with errors.ErrUnsupported.
func TestTierQuotaUnsupported(t *testing.T) {
	var fs fakes
	l := newLimiter(t, fs.factory, quotaConfig())
	ctx := t.Context()
	if err := l.SettleN(ctx, "k", 1, 2); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SettleN: %v", err)
	}
	if _, err := l.Peek(ctx, "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Peek: %v", err)
	}
	if err := l.Reset(ctx, "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Reset: %v", err)
	}
}

// TestTierQuotaRealRedis runs two tiers.Limiters on a real redis-server,
// as two instances: what one admits and settles, the other inspects.
func TestTierQuotaRealRedis(t *testing.T) {
	rdb, base := realServer(t)
	cfg := tiers.Config{DefaultTier: "free", Tiers: []tiers.Tier{{Name: "free", Limits: []tiers.Limit{
		tiers.Client("day", ratelimit.Per(100, 24*time.Hour)),
		tiers.Shared("all", ratelimit.Per(1000, 24*time.Hour)),
	}}}}
	var ls [2]*tiers.Limiter
	for i := range ls {
		l := newLimiter(t, tiers.Direct(rdb), cfg, tiers.WithKeyspace(base))
		ls[i] = l
	}
	ctx := t.Context()
	if res, err := ls[0].Check(ctx, "bob", "", 5); err != nil || !res.Decision.Allowed {
		t.Fatal(res, err)
	}
	if err := ls[1].SettleN(ctx, "bob", 5, 25); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, ls[0], "bob"); got != [2]int{75, 975} {
		t.Fatalf("after a cost of 25: %v, want [75 975]", got)
	}
	if err := ls[0].Reset(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, ls[1], "bob"); got != [2]int{100, 975} {
		t.Fatalf("after Reset: %v, want [100 975]", got)
	}
}
