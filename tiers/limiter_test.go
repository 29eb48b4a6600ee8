package tiers_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func threeTiers() tiers.Config {
	return tiers.Config{
		Tiers: []tiers.Tier{
			{Name: "free", Limits: []tiers.Limit{tiers.Client("second", ratelimit.PerSecond(2))}},
			{Name: "pro", Limits: []tiers.Limit{
				tiers.Client("second", ratelimit.PerSecond(10)).WithAlgorithm(algorithms.TokenBucket),
				tiers.Shared("all", ratelimit.PerSecond(100)),
				tiers.Client("day", ratelimit.Per(1000, 24*time.Hour)),
			}},
			{Name: "gold", Limits: []tiers.Limit{tiers.Client("second", ratelimit.PerSecond(50))}},
		},
		DefaultTier: "free",
		Clients:     map[string]string{"alice": "pro", "r-gold-listed": "free"},
		Overrides: []tiers.Override{{Key: "acme", Tier: "pro", Limits: []tiers.Limit{
			tiers.Client("second", ratelimit.PerSecond(40)),
			tiers.Client("hour", ratelimit.PerHour(500)),
		}}},
	}
}

var errLookup = errors.New("lookup failed")

func resolver() tiers.Resolver {
	return tiers.ResolverFunc(func(_ context.Context, key string) (string, error) {
		switch {
		case strings.HasPrefix(key, "r-gold"):
			return "gold", nil
		case key == "r-bad":
			return "platinum", nil
		case key == "r-err":
			return "", errLookup
		}
		return "", nil
	})
}

func TestResolution(t *testing.T) {
	fs := &fakes{}
	l := newLimiter(t, fs.factory, threeTiers(), tiers.WithResolver(resolver()))
	tests := []struct {
		key, tier string // tier: explicit tier passed to Check
		want      string
		err       error
	}{
		{key: "alice", want: "pro"},                // Clients map
		{key: "acme", want: "pro"},                 // override
		{key: "acme", tier: "gold", want: "pro"},   // the override still applies
		{key: "alice", tier: "gold", want: "gold"}, // explicit beats Clients
		{key: "r-gold-1", want: "gold"},            // resolver
		{key: "r-gold-listed", want: "free"},       // Clients beats the resolver
		{key: "stranger", want: "free"},            // default tier
		{key: "r-bad", err: tiers.ErrUnknownTier},  // resolver names an unknown tier
		{key: "r-err", err: errLookup},             // resolver fails
		{key: "x", tier: "nope", err: tiers.ErrUnknownTier},
		{key: "", err: ratelimit.ErrInvalidKey},
	}
	for _, tt := range tests {
		res, err := l.Check(context.Background(), tt.key, tt.tier, 1)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Check(%q, tier %q) error = %v, want %v", tt.key, tt.tier, err, tt.err)
			}
			continue
		}
		if err != nil || res.Tier != tt.want || !res.Decision.Allowed {
			t.Errorf("Check(%q, tier %q) = tier %q allowed %v, %v; want tier %q allowed",
				tt.key, tt.tier, res.Tier, res.Decision.Allowed, err, tt.want)
		}
		if tt.tier == "" {
			if name, err := l.Resolve(context.Background(), tt.key); name != tt.want || err != nil {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tt.key, name, err, tt.want)
			}
		}
	}
}

func TestNoDefaultTier(t *testing.T) {
	cfg := threeTiers()
	cfg.DefaultTier = ""
	fs := &fakes{}
	l := newLimiter(t, fs.factory, cfg)
	if _, err := l.Check(context.Background(), "stranger", "", 1); !errors.Is(err, tiers.ErrUnknownTier) {
		t.Errorf("unknown client without default tier: error = %v, want ErrUnknownTier", err)
	}
	if _, err := l.Check(context.Background(), "alice", "", 1); err != nil {
		t.Errorf("listed client: %v", err)
	}
}

func TestOverride(t *testing.T) {
	fs := &fakes{}
	l := newLimiter(t, fs.factory, threeTiers())
	ctx := context.Background()

	res, err := l.Check(ctx, "acme", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lr := range res.Limits {
		got = append(got, lr.Name+"="+lr.Limit.String())
	}
	want := []string{ // client limits in tier order, the added one, then the shared one
		"second=40/1s burst 40", "day=1000/24h0m0s burst 1000", "hour=500/1h0m0s burst 500", "all=100/1s burst 100",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("acme's limits = %v, want %v", got, want)
	}

	// The replacing limit inherits the tier limit's algorithm and shares
	// its namespace, so acme keeps its usage when its override changes.
	var tierSecond, acmeSecond *fake
	for _, f := range fs.all() {
		if f.spec.Tier == "pro" && f.spec.Limit.Name == "second" {
			if f.spec.Limit.Budget.Rate == 40 {
				acmeSecond = f
			} else {
				tierSecond = f
			}
		}
	}
	if acmeSecond == nil || tierSecond == nil {
		t.Fatal("no limiters for pro/second")
	}
	if acmeSecond.spec.Limit.Algorithm != algorithms.TokenBucket {
		t.Errorf("override algorithm = %v, want the tier limit's token bucket", acmeSecond.spec.Limit.Algorithm)
	}
	if a, b := acmeSecond.spec.Keyspace.Prefix(), tierSecond.spec.Keyspace.Prefix(); a != b || a != "rl:pro:second:" {
		t.Errorf("keyspaces: override %q, tier %q; want both rl:pro:second:", a, b)
	}

	// The shared limit is the tier's: acme and alice spend one budget,
	// keyed by the tier name.
	if _, err := l.Check(ctx, "alice", "", 1); err != nil {
		t.Fatal(err)
	}
	if n := fs.find("pro", "all").spent("pro"); n != 2 {
		t.Errorf("shared limit spent %d under key \"pro\", want 2 (acme and alice)", n)
	}
	if n := acmeSecond.spent("acme"); n != 1 {
		t.Errorf("acme's own second limit spent %d, want 1", n)
	}
	if n := tierSecond.spent("acme"); n != 0 {
		t.Errorf("the tier's second limit was charged %d for acme, want 0", n)
	}
}

func TestDenialRefundsEarlierLimits(t *testing.T) {
	cfg := oneTier(
		tiers.Client("big", ratelimit.PerHour(100)),
		tiers.Client("small", ratelimit.PerHour(2)),
		tiers.Shared("shared", ratelimit.PerHour(3)),
	)
	fs := &fakes{}
	l := newLimiter(t, fs.factory, cfg)
	ctx := context.Background()
	big, small, shared := fs.find("t", "big"), fs.find("t", "small"), fs.find("t", "shared")

	type step struct {
		key     string
		allowed bool
		// spent after the step: big[key], small[key], shared["t"]
		big, small, shared int
	}
	steps := []step{
		{"a", true, 1, 1, 1},
		{"a", true, 2, 2, 2},
		{"a", false, 2, 2, 2}, // small denies: big is given back, shared never asked
		{"b", true, 1, 1, 3},
		{"b", false, 1, 1, 3}, // shared denies: big and small are given back
	}
	for i, s := range steps {
		res, err := l.Check(ctx, s.key, "", 1)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if res.Decision.Allowed != s.allowed {
			t.Errorf("step %d: allowed = %v, want %v", i, res.Decision.Allowed, s.allowed)
		}
		if g := [3]int{big.spent(s.key), small.spent(s.key), shared.spent("t")}; g != [3]int{s.big, s.small, s.shared} {
			t.Errorf("step %d: spent big, small, shared = %v, want %v", i, g, [3]int{s.big, s.small, s.shared})
		}
	}
	if got := shared.calls.Load(); got != 4 {
		t.Errorf("shared limit asked %d times, want 4 (never when a client limit denies)", got)
	}

	// The result of the last denial explains itself.
	res, _ := l.Check(ctx, "b", "", 1)
	d := res.Decision
	if d.Allowed || d.Limit != ratelimit.PerHour(3) || d.RetryAfter != ratelimit.PerHour(3).Interval() {
		t.Errorf("combined decision = %+v, want the shared limit's denial", d)
	}
	if !res.Limits[0].Refunded || !res.Limits[1].Refunded || res.Limits[2].Refunded {
		t.Errorf("refunded flags = %v %v %v, want true true false", res.Limits[0].Refunded, res.Limits[1].Refunded, res.Limits[2].Refunded)
	}
	if r := res.Limits[0].Decision.Remaining; r != 99 {
		t.Errorf("big remaining after refund = %d, want 99", r)
	}
}

func TestAllowedDecisionIsTightestLimit(t *testing.T) {
	cfg := oneTier(
		tiers.Client("big", ratelimit.PerHour(100)),
		tiers.Client("small", ratelimit.PerHour(5)),
	)
	fs := &fakes{}
	l := newLimiter(t, fs.factory, cfg)
	d, err := l.AllowN(context.Background(), "k", 2)
	if err != nil || !d.Allowed || d.Remaining != 3 || d.Limit != ratelimit.PerHour(5) {
		t.Errorf("AllowN = %+v, %v; want allowed with the small limit's remaining 3", d, err)
	}
}

func TestErrorMidCheckRefunds(t *testing.T) {
	cfg := oneTier(
		tiers.Client("first", ratelimit.PerHour(10)),
		tiers.Client("broken", ratelimit.PerHour(10)),
	)
	storeErr := &ratelimit.StoreError{Op: "test", Key: "k", Err: errors.New("connection refused")}
	fs := &fakes{setup: func(f *fake) {
		if f.spec.Limit.Name == "broken" {
			f.err = storeErr
		}
	}}
	l := newLimiter(t, fs.factory, cfg)
	_, err := l.Check(context.Background(), "k", "", 1)
	if !errors.Is(err, ratelimit.ErrStore) {
		t.Errorf("error = %v, want one matching ErrStore", err)
	}
	if n := fs.find("t", "first").spent("k"); n != 0 {
		t.Errorf("first limit still charged %d after the second failed, want 0", n)
	}
}

func TestInvalidNSpendsNothing(t *testing.T) {
	cfg := oneTier(
		tiers.Client("big", ratelimit.PerHour(100)),
		tiers.Client("small", ratelimit.PerHour(5)),
	)
	fs := &fakes{}
	l := newLimiter(t, fs.factory, cfg)
	for _, n := range []int{0, -1, 6} {
		if _, err := l.AllowN(context.Background(), "k", n); !errors.Is(err, ratelimit.ErrInvalidN) {
			t.Errorf("AllowN(%d) error = %v, want ErrInvalidN", n, err)
		}
	}
	if got := fs.find("t", "big").calls.Load(); got != 0 {
		t.Errorf("big limit asked %d times, want 0", got)
	}
}

func TestRefundN(t *testing.T) {
	fs := &fakes{}
	l := newLimiter(t, fs.factory, threeTiers())
	ctx := context.Background()
	for range 3 {
		if _, err := l.Allow(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RefundN(ctx, "alice", 2); err != nil {
		t.Fatal(err)
	}
	if a, b, c := fs.find("pro", "second").spent("alice"), fs.find("pro", "day").spent("alice"), fs.find("pro", "all").spent("pro"); a != 1 || b != 1 || c != 1 {
		t.Errorf("after refunding 2 of 3: spent second %d, day %d, all %d; want 1 each", a, b, c)
	}
}

func TestNotRefundable(t *testing.T) {
	plain := func(s tiers.Spec) (ratelimit.Limiter, error) {
		return noRefund{&fake{spec: s}}, nil
	}
	multi := tiers.Config{Tiers: []tiers.Tier{{Name: "t", Limits: []tiers.Limit{
		tiers.Client("a", ratelimit.PerHour(10)),
		tiers.Client("b", ratelimit.PerHour(10)),
	}}}}
	if _, err := tiers.New(plain, multi); !errors.Is(err, tiers.ErrNotRefundable) {
		t.Errorf("New with a two-limit tier of non-refunders: error = %v, want ErrNotRefundable", err)
	}
	single := oneTier(tiers.Client("a", ratelimit.PerHour(10)))
	l := newLimiter(t, plain, single) // one limit needs no refunds
	if err := l.RefundN(context.Background(), "k", 1); !errors.Is(err, tiers.ErrNotRefundable) {
		t.Errorf("RefundN = %v, want ErrNotRefundable", err)
	}
}

func TestNewErrors(t *testing.T) {
	fs := &fakes{}
	if _, err := tiers.New(fs.factory, tiers.Config{}); !errors.Is(err, tiers.ErrInvalidConfig) {
		t.Errorf("empty config: %v, want ErrInvalidConfig", err)
	}
	if _, err := tiers.New(nil, threeTiers()); err == nil {
		t.Error("nil factory: no error")
	}
	long, _ := ratelimit.NewKeyspace(strings.Repeat("p", 60))
	if _, err := tiers.New(fs.factory, threeTiers(), tiers.WithKeyspace(long)); !errors.Is(err, tiers.ErrInvalidConfig) {
		t.Errorf("base prefix too long for tier and limit names: %v, want ErrInvalidConfig", err)
	}
	// A factory failure closes what New made before it.
	fs = &fakes{failName: "day"}
	if _, err := tiers.New(fs.factory, threeTiers()); err == nil || !strings.Contains(err.Error(), `limit "day" of tier "pro"`) {
		t.Errorf("factory failure: %v", err)
	}
	for _, f := range fs.all() {
		if f.closes.Load() != 1 {
			t.Errorf("limiter %s/%s made before the failure closed %d times, want 1", f.spec.Tier, f.spec.Limit.Name, f.closes.Load())
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() tiers.Config {
		return tiers.Config{Tiers: []tiers.Tier{{Name: "free", Limits: []tiers.Limit{tiers.Client("s", ratelimit.PerSecond(1))}}}}
	}
	tests := []struct {
		name  string
		edit  func(*tiers.Config)
		field string
	}{
		{"duplicate tier", func(c *tiers.Config) { c.Tiers = append(c.Tiers, c.Tiers[0]) }, "tiers.free"},
		{"duplicate limit", func(c *tiers.Config) { c.Tiers[0].Limits = append(c.Tiers[0].Limits, c.Tiers[0].Limits[0]) }, "tiers.free.limits.s"},
		{"zero burst", func(c *tiers.Config) { c.Tiers[0].Limits[0].Budget.Burst = 0 }, "tiers.free.limits.s.burst"},
		{"sub-microsecond period", func(c *tiers.Config) { c.Tiers[0].Limits[0].Budget.Period = time.Second + 1 }, "tiers.free.limits.s.period"},
		{"long name", func(c *tiers.Config) { c.Tiers[0].Name = strings.Repeat("x", tiers.MaxNameLen+1) }, "tiers." + strings.Repeat("x", tiers.MaxNameLen+1)},
		{"bad scope", func(c *tiers.Config) { c.Tiers[0].Limits[0].Scope = 7 }, "tiers.free.limits.s.scope"},
		{"empty client key", func(c *tiers.Config) { c.Clients = map[string]string{"": "free"} }, "clients."},
		{"override without tier", func(c *tiers.Config) {
			c.Overrides = []tiers.Override{{Key: "k", Limits: c.Tiers[0].Limits}}
		}, "overrides.k.tier"},
		{"duplicate override", func(c *tiers.Config) {
			o := tiers.Override{Key: "k", Tier: "free", Limits: c.Tiers[0].Limits}
			c.Overrides = []tiers.Override{o, o}
		}, "overrides.k"},
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range tests {
		c := ok()
		tt.edit(&c)
		err := c.Validate()
		var ce *tiers.ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%s: error %v, want one for field %q", tt.name, err, tt.field)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "tiers: ") {
			t.Errorf("%s: error %q should start with \"tiers: \" when no file is involved", tt.name, err)
		}
	}
}

func TestDirect(t *testing.T) {
	f := tiers.Direct(nil)
	if _, err := f(tiers.Spec{Tier: "t", Limit: tiers.Client("l", ratelimit.PerSecond(1)).WithLease(true)}); !errors.Is(err, tiers.ErrLeaseUnsupported) {
		t.Errorf("Direct with Lease: %v, want ErrLeaseUnsupported", err)
	}
	ks, _ := tiers.LimitKeyspace(ratelimit.Keyspace{}, "t", "l")
	x, err := f(tiers.Spec{Tier: "t", Limit: tiers.Client("l", ratelimit.PerSecond(1)).WithAlgorithm(algorithms.TokenBucket), Keyspace: ks})
	if err != nil {
		t.Fatal(err)
	}
	al, ok := x.(*algorithms.Limiter)
	if !ok || al.Algorithm() != algorithms.TokenBucket || al.Limit() != ratelimit.PerSecond(1) {
		t.Errorf("Direct made %#v, want a token bucket algorithms.Limiter of 1/s", x)
	}
	if ks.Prefix() != "rl:t:l:" {
		t.Errorf("LimitKeyspace prefix = %q, want rl:t:l:", ks.Prefix())
	}
}

func TestClosed(t *testing.T) {
	fs := &fakes{}
	l, err := tiers.New(fs.factory, threeTiers())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Allow(context.Background(), "alice"); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Allow after Close: %v, want ErrClosed", err)
	}
	if err := l.Reload(threeTiers()); !errors.Is(err, ratelimit.ErrClosed) {
		t.Errorf("Reload after Close: %v, want ErrClosed", err)
	}
	for _, f := range fs.all() {
		if f.closes.Load() != 1 {
			t.Errorf("limiter %s/%s closed %d times, want 1", f.spec.Tier, f.spec.Limit.Name, f.closes.Load())
		}
	}
}
