package telemetry

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the name of the OpenTelemetry meter and tracer: the module
// path.
const ScopeName = "github.com/distributedratelimiter/ratelimit"

// Metric names. docs/metrics.md describes each: its kind, unit,
// attributes, and what to alert on. A test pins them: renaming one breaks
// dashboards and alerts.
const (
	// Decisions, recorded by a [Limiter] (and by [ObserveLease] with
	// [WithLeaseDecisions]). Decisions of the failure policy are those
	// with ratelimit.source=fallback.
	MetricDecisions        = "ratelimit.decisions"
	MetricDecisionDuration = "ratelimit.decision.duration"
	MetricDecisionErrors   = "ratelimit.decision.errors"

	// MetricFallbackDecisions is no longer reported: it repeated
	// ratelimit.decisions{ratelimit.source=fallback}.
	//
	// Deprecated: count ratelimit.decisions with ratelimit.source=fallback.
	MetricFallbackDecisions = "ratelimit.fallback.decisions"

	// Redis calls, recorded by a [RedisHook].
	MetricRedisCalls    = "ratelimit.redis.calls"
	MetricRedisDuration = "ratelimit.redis.duration"

	// Leasing, observed by [ObserveLease] from lease.Stats.
	MetricLeaseTokensLeased   = "ratelimit.lease.tokens.leased"
	MetricLeaseTokensServed   = "ratelimit.lease.tokens.served"
	MetricLeaseTokensReturned = "ratelimit.lease.tokens.returned"
	MetricLeaseTokensExpired  = "ratelimit.lease.tokens.expired"
	MetricLeaseTokensHeld     = "ratelimit.lease.tokens.held"
	MetricLeaseTokensBudget   = "ratelimit.lease.tokens.budget"
	MetricLeaseRefills        = "ratelimit.lease.refills"
	MetricLeasePrefetches     = "ratelimit.lease.prefetches"
	MetricLeaseRefillErrors   = "ratelimit.lease.refill.errors"
	MetricLeaseWaits          = "ratelimit.lease.waits"
	MetricLeaseLocalDenials   = "ratelimit.lease.local_denials"
	MetricLeaseKeys           = "ratelimit.lease.keys"
	MetricLeaseEvictions      = "ratelimit.lease.evictions"
	MetricLeaseOverflows      = "ratelimit.lease.overflows"
	MetricLeaseGiveBackErrors = "ratelimit.lease.giveback.errors"

	// MetricLeaseFallbacks is no longer reported: it counted by policy
	// the decisions that ratelimit.decisions{ratelimit.source=fallback}
	// counts.
	//
	// Deprecated: observe with [WithLeaseDecisions] and count
	// ratelimit.decisions with ratelimit.source=fallback.
	MetricLeaseFallbacks = "ratelimit.lease.fallbacks"

	// MetricCircuitState is observed by [ObserveLease]: the lease
	// limiter's circuit breaker, or the one [WithCircuitState] reports.
	MetricCircuitState = "ratelimit.circuit.state"
)

// Attribute keys. No metric ever carries a client key, which is
// unbounded and may identify a person.
const (
	// AttrTier is the tier's name, set with [WithTier]; absent when empty.
	AttrTier attribute.Key = "ratelimit.tier"
	// AttrLimit is the limit's name, set with [WithLimitName]; absent when
	// empty.
	AttrLimit attribute.Key = "ratelimit.limit"
	// AttrResult is allowed, denied or shadowed.
	AttrResult attribute.Key = "ratelimit.result"
	// AttrSource is where a decision was made: local, redis or fallback
	// (ratelimit.Source's String).
	AttrSource attribute.Key = "ratelimit.source"
	// AttrErrorType classifies a failed check: store, timeout, canceled,
	// invalid, closed or other. The key is OpenTelemetry's general
	// error.type.
	AttrErrorType attribute.Key = "error.type"
	// AttrFallbackPolicy was the attribute of the metrics that
	// MetricFallbackDecisions and MetricLeaseFallbacks name.
	//
	// Deprecated: no metric carries it any more.
	AttrFallbackPolicy attribute.Key = "ratelimit.fallback.policy"
	// AttrScript is the short name of one of the algorithms package's Lua
	// scripts, as algorithms.ScriptName gives it.
	AttrScript attribute.Key = "ratelimit.script"
	// AttrOutcome is how a Redis call ended: ok, error, timeout, noscript
	// or canceled.
	AttrOutcome attribute.Key = "ratelimit.outcome"
	// AttrCircuitState is closed, open or half-open.
	AttrCircuitState attribute.Key = "ratelimit.circuit.state"
)

// Values of [AttrResult].
const (
	ResultAllowed  = "allowed"
	ResultDenied   = "denied"
	ResultShadowed = "shadowed"
)

// Values of [AttrErrorType].
const (
	ErrorStore    = "store"    // ratelimit.ErrStore: Redis failed or replied badly
	ErrorTimeout  = "timeout"  // a deadline passed (the caller's or the limiter's)
	ErrorCanceled = "canceled" // the caller's context was cancelled
	ErrorInvalid  = "invalid"  // an invalid key, n or limit
	ErrorClosed   = "closed"   // ratelimit.ErrClosed
	ErrorOther    = "other"
)

// Values of [AttrFallbackPolicy].
//
// Deprecated: no metric carries them any more.
const (
	FallbackOpen   = "open"
	FallbackClosed = "closed"
	FallbackLocal  = "local" // ratelimit.FailLocal: this instance's share of the limit
)

// Values of [AttrOutcome].
const (
	OutcomeOK       = "ok"       // Redis replied (a nil reply included)
	OutcomeError    = "error"    // an error reply or a connection failure
	OutcomeTimeout  = "timeout"  // a deadline passed
	OutcomeNoScript = "noscript" // EVALSHA of a script not cached; go-redis retries with EVAL
	OutcomeCanceled = "canceled" // the caller's context was cancelled
)

// Values of [AttrCircuitState], as the circuit breaker's State prints them.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half-open"
)

// Units, in UCUM as OpenTelemetry's conventions write them.
const (
	unitDecision = "{decision}"
	unitError    = "{error}"
	unitCall     = "{call}"
	unitToken    = "{token}"
	unitRefill   = "{refill}"
	unitWait     = "{wait}"
	unitKey      = "{key}"
	unitRequest  = "{request}"
	unitState    = "{state}"
	unitSeconds  = "s"
)

// decisionBuckets are the bucket boundaries of
// ratelimit.decision.duration, in seconds: from 100 ns, fine enough to
// tell a local hit (tens of ns) from a Redis round trip (tens of µs), to
// 1 s.
var decisionBuckets = []float64{
	100e-9, 250e-9, 500e-9,
	1e-6, 2.5e-6, 5e-6,
	10e-6, 25e-6, 50e-6,
	100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3,
	10e-3, 25e-3, 50e-3,
	100e-3, 250e-3, 500e-3,
	1,
}

// redisBuckets are the bucket boundaries of ratelimit.redis.duration, in
// seconds: 25 µs to 1 s.
var redisBuckets = []float64{
	25e-6, 50e-6,
	100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3,
	10e-3, 25e-3, 50e-3,
	100e-3, 250e-3, 500e-3,
	1,
}
