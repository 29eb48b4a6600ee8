package telemetry

import (
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// A WrapOption configures [Wrap]: an [Option], a [LeaseOption] or a
// [FactoryOption].
type WrapOption interface{ applyWrap(*config) }

// A LeaseOption configures [ObserveLease] and [Wrap]: an [Option],
// [WithLimit].
type LeaseOption interface {
	WrapOption
	applyLease(*config)
}

// A FactoryOption configures [Factory] and [Wrap]: an [Option] or
// [WithSampleEvery]. Factory names each limiter's tier and limit itself.
type FactoryOption interface {
	WrapOption
	applyFactory(*config)
}

// A HookOption configures [NewRedisHook]: an [Option] or
// [WithTracerProvider].
type HookOption interface{ applyHook(*config) }

// An Option configures every constructor: [Wrap], [ObserveLease],
// [Factory] and [NewRedisHook]. Each constructor takes options of its own
// type, so that an option it would not read does not compile (see the
// package doc); a nil option of any type is skipped.
type Option interface {
	LeaseOption
	FactoryOption
	HookOption
}

// option is an Option; leaseOption, factoryOption and hookOption are
// options of the types their names say, and of no other.
type (
	option        func(*config)
	leaseOption   func(*config)
	factoryOption func(*config)
	hookOption    func(*config)
)

func (o option) applyWrap(c *config)    { o(c) }
func (o option) applyLease(c *config)   { o(c) }
func (o option) applyFactory(c *config) { o(c) }
func (o option) applyHook(c *config)    { o(c) }

func (o leaseOption) applyWrap(c *config)  { o(c) }
func (o leaseOption) applyLease(c *config) { o(c) }

func (o factoryOption) applyWrap(c *config)    { o(c) }
func (o factoryOption) applyFactory(c *config) { o(c) }

func (o hookOption) applyHook(c *config) { o(c) }

// defaultSampleEvery is how many decisions a [Limiter] makes per decision
// it times, when [WithSampleEvery] is not given.
const defaultSampleEvery = 64

type config struct {
	mp          metric.MeterProvider
	tp          trace.TracerProvider // nil: no spans
	tier        string
	limit       string
	attrs       []attribute.KeyValue // WithAttributes, before tier and limit
	sampleEvery int
}

// newConfig returns the defaults with opts applied by apply, a method
// expression such as WrapOption.applyWrap.
func newConfig[O any](opts []O, apply func(O, *config)) config {
	c := config{sampleEvery: defaultSampleEvery}
	for _, o := range opts {
		if any(o) != nil {
			apply(o, &c)
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
// a [Limiter] only forwards calls and counts nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return option(func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	})
}

// WithAttributes adds attributes to every metric, such as the name of one
// of several tiers.Limiters in one process, or of an instance when several
// share a meter provider. Default: none. Keys of this package
// (ratelimit.tier, ratelimit.result, ...) take precedence over the same
// keys given here. Like tier names, values must be few and fixed: never a
// client key. Later calls add to earlier ones.
func WithAttributes(kv ...attribute.KeyValue) Option {
	kv = append([]attribute.KeyValue(nil), kv...)
	return option(func(c *config) { c.attrs = append(c.attrs, kv...) })
}

// WithLimit names the limit a [Limiter] or a lease observation measures:
// the values of the ratelimit.tier and ratelimit.limit attributes on every
// metric (limit tells apart several limits of one tier, each its own
// limiter). Default: "" for each (the attribute is left out). Tier and
// limit names should be few and fixed, never client keys. [Factory] sets
// them to each Spec's tier and limit name.
func WithLimit(tier, limit string) LeaseOption {
	return leaseOption(func(c *config) { c.tier, c.limit = tier, limit })
}

// WithSampleEvery makes a [Limiter] time about one decision in n for the
// ratelimit.decision.duration histogram, rather than every one: reading
// the clock twice would cost more than the leased hit path itself. n is
// rounded up to a power of two; a check is timed when its stripe's count
// of checks reaches a multiple of n. Default: 64. 1 times every decision;
// zero keeps the default; a negative n times none. [Factory] applies it to
// the limiters it wraps (leasing limiters are not timed).
func WithSampleEvery(n int) FactoryOption {
	return factoryOption(func(c *config) {
		if n != 0 {
			c.sampleEvery = n
		}
	})
}

// WithTracerProvider makes the hook of [NewRedisHook] start one client
// span per Redis call of the algorithms package's scripts (not one per
// decision: most decisions make no Redis call). Default: no spans. A nil
// provider keeps the default.
func WithTracerProvider(tp trace.TracerProvider) HookOption {
	return hookOption(func(c *config) { c.tp = tp })
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
