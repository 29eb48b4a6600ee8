package telemetry

import (
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/distributedratelimiter/ratelimit/lease"
)

// DefaultSampleEvery is how many decisions a [Limiter] makes per decision
// it times, when [WithSampleEvery] is not given.
const DefaultSampleEvery = 64

// An Option configures [Wrap], [ObserveLease], [Factory] or
// [NewRedisHook]. Each option's doc says which of them read it; the others
// ignore it. A nil Option is skipped.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	mp          metric.MeterProvider
	tp          trace.TracerProvider // nil: no spans
	tier        string
	limit       string
	attrs       []attribute.KeyValue // WithAttributes, before tier and limit
	sampleEvery int
	budget      float64 // 0: ask the limiter, else lease.DefaultAccuracyBudget
	circuit     func() string
	// leaseDecisions: ObserveLease reports ratelimit.decisions too.
	leaseDecisions bool
}

func newConfig(opts []Option) config {
	c := config{sampleEvery: DefaultSampleEvery}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	return c
}

// meter returns the package's meter from c's provider: named after the
// module path, with the module's version when the build records one.
func (c *config) meter() metric.Meter {
	return c.mp.Meter(ScopeName, metric.WithInstrumentationVersion(moduleVersion()))
}

// WithMeterProvider sets the provider of the meter that records metrics.
// Default: the global provider, otel.GetMeterProvider(), which records
// nothing until the application installs an SDK with
// otel.SetMeterProvider, and then forwards to it. A nil provider keeps the
// default. With the no-op provider (go.opentelemetry.io/otel/metric/noop)
// a [Limiter] only forwards calls and counts nothing. Read by Wrap,
// ObserveLease, Factory and NewRedisHook.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	})
}

// WithTracerProvider makes a [RedisHook] start one client span per Redis
// call of the algorithms package's scripts (not one per decision: most
// decisions make no Redis call). Default: no spans. A nil provider keeps
// the default. Read by NewRedisHook.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithTier sets the value of the ratelimit.tier attribute on every metric
// of a [Limiter] or of a lease observation. Default: "" (the attribute is
// left out). Tier names should be few and fixed, never client keys. Read by
// Wrap and ObserveLease; [Factory] sets it to each Spec's tier.
func WithTier(name string) Option {
	return optionFunc(func(c *config) { c.tier = name })
}

// WithLimitName sets the value of the ratelimit.limit attribute, to tell
// apart several limits of one tier (each its own limiter). Default: "" (the
// attribute is left out). Read by Wrap and ObserveLease; [Factory] sets it
// to each Spec's limit name.
func WithLimitName(name string) Option {
	return optionFunc(func(c *config) { c.limit = name })
}

// WithSampleEvery makes a [Limiter] time about one decision in n for the
// ratelimit.decision.duration histogram, rather than every one: reading
// the clock twice would cost more than the leased hit path itself. n is
// rounded up to a power of two; a check is timed when its stripe's count
// of checks reaches a multiple of n. Default:
// DefaultSampleEvery (64). 1 times every decision; zero or negative times
// none. Read by Wrap and Factory.
func WithSampleEvery(n int) Option {
	return optionFunc(func(c *config) { c.sampleEvery = n })
}

// WithAccuracyBudget tells [ObserveLease] the accuracy budget the observed
// limiter was built with (lease.WithAccuracyBudget), for the
// ratelimit.lease.tokens.budget gauge, when the limiter cannot say
// itself (it has no AccuracyBudget() float64 method). Default:
// lease.DefaultAccuracyBudget. Values outside (0, 1] keep the default.
// Read by ObserveLease and Factory.
func WithAccuracyBudget(f float64) Option {
	return optionFunc(func(c *config) {
		if f > 0 && f <= 1 {
			c.budget = f
		}
	})
}

// WithCircuitState gives [ObserveLease] the state of a circuit breaker
// in front of Redis, as the breaker prints it ("closed", "open" or
// "half-open"), for the ratelimit.circuit.state gauge, in place of the
// lease limiter's own (lease.Stats.Breaker). It is called once per
// collection and must be safe for concurrent use. Default: none: the
// state comes from Stats, and a LeaseStats that reports none ("") gets no
// gauge. Read by ObserveLease.
func WithCircuitState(f func() string) Option {
	return optionFunc(func(c *config) { c.circuit = f })
}

// accuracyBudget returns the budget to report for l.
func (c *config) accuracyBudget(l LeaseStats) float64 {
	if b, ok := l.(interface{ AccuracyBudget() float64 }); ok {
		if f := b.AccuracyBudget(); f > 0 && f <= 1 {
			return f
		}
	}
	if c.budget > 0 {
		return c.budget
	}
	return lease.DefaultAccuracyBudget
}

// moduleVersion returns the version of the module this package belongs to
// as the build recorded it, or "" when unknown (tests, builds without
// module information).
var moduleVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	if bi.Main.Path == ScopeName {
		return cleanVersion(bi.Main.Version)
	}
	for _, m := range bi.Deps {
		if m.Path == ScopeName {
			if m.Replace != nil {
				return cleanVersion(m.Replace.Version)
			}
			return cleanVersion(m.Version)
		}
	}
	return ""
})

func cleanVersion(v string) string {
	if v == "(devel)" {
		return ""
	}
	return v
}

// WithLeaseDecisions makes [ObserveLease] report ratelimit.decisions from
// the leasing limiter's own decision counts, so the limiter needs no [Wrap]
// and its hit path no extra call. Default: off (count decisions with Wrap).
// [Factory] always observes its leasing limiters so.
func WithLeaseDecisions() Option {
	return optionFunc(func(c *config) { c.leaseDecisions = true })
}

// WithAttributes adds attributes to every metric of a [Limiter] or of a
// lease observation, such as the name of one of several tiers.Limiters in
// one process, or of an instance when several share a meter provider.
// Default: none. Keys of this package (ratelimit.tier, ratelimit.result,
// ...) take precedence over the same keys given here. Like tier names,
// values must be few and fixed: never a client key. Later calls add to
// earlier ones. Read by Wrap, ObserveLease and Factory.
func WithAttributes(kv ...attribute.KeyValue) Option {
	kv = append([]attribute.KeyValue(nil), kv...)
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, kv...) })
}
