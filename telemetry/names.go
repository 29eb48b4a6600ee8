package telemetry

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the name of the OpenTelemetry meter and tracer: the module
// path.
const ScopeName = "github.com/distributedratelimiter/ratelimit"

// Metric names. docs/metrics.md describes each: its kind, unit,
// attributes, and what to alert on. TestMetricNames pins them: renaming
// one breaks dashboards and alerts.
const (
	// Decisions, recorded by a [Limiter] and by [ObserveLease]. Decisions
	// of the failure policy are those with ratelimit.source=fallback.
	metricDecisions        = "ratelimit.decisions"
	metricDecisionDuration = "ratelimit.decision.duration"
	metricDecisionErrors   = "ratelimit.decision.errors"

	// Redis calls, recorded by the hook of [NewRedisHook].
	metricRedisCalls    = "ratelimit.redis.calls"
	metricRedisDuration = "ratelimit.redis.duration"

	// Leasing, observed by [ObserveLease] from lease.Stats.
	metricLeaseTokensLeased   = "ratelimit.lease.tokens.leased"
	metricLeaseTokensServed   = "ratelimit.lease.tokens.served"
	metricLeaseTokensReturned = "ratelimit.lease.tokens.returned"
	metricLeaseTokensExpired  = "ratelimit.lease.tokens.expired"
	metricLeaseTokensHeld     = "ratelimit.lease.tokens.held"
	metricLeaseTokensBudget   = "ratelimit.lease.tokens.budget"
	metricLeaseRefills        = "ratelimit.lease.refills"
	metricLeasePrefetches     = "ratelimit.lease.prefetches"
	metricLeaseRefillErrors   = "ratelimit.lease.refill.errors"
	metricLeaseWaits          = "ratelimit.lease.waits"
	metricLeaseDeniedLocal    = "ratelimit.lease.local_denials"
	metricLeaseKeys           = "ratelimit.lease.keys"
	metricLeaseEvictions      = "ratelimit.lease.evictions"
	metricLeaseOverflows      = "ratelimit.lease.overflows"
	metricLeaseReturnErrors   = "ratelimit.lease.return.errors"

	// metricCircuitState is observed by [ObserveLease]: the state of
	// the limiter's circuit breaker, lease.Stats.Breaker.
	metricCircuitState = "ratelimit.circuit.state"
)

// descDecisions is the description of ratelimit.decisions, which a
// [Limiter] and [ObserveLease] both report.
const descDecisions = "Rate-limit decisions, by result (allowed, denied, shadowed) and source (local, redis, fallback)."

// Attribute keys. No metric ever carries a client key, which is
// unbounded and may identify a person. Their values are the String of
// result, ratelimit.Source, errorKind and outcome, and circuitStates.
const (
	attrTier      attribute.Key = "ratelimit.tier"   // [WithLimit]; absent when empty
	attrLimit     attribute.Key = "ratelimit.limit"  // [WithLimit]; absent when empty
	attrResult    attribute.Key = "ratelimit.result" // allowed, denied or shadowed
	attrSource    attribute.Key = "ratelimit.source" // local, redis, fallback (or unknown)
	attrErrorType attribute.Key = "error.type"       // OpenTelemetry's general key: store, timeout, canceled, invalid, closed or other
	attrScript    attribute.Key = "ratelimit.script" // a script's short name, as algorithms.ScriptName gives it
	attrOutcome   attribute.Key = "ratelimit.outcome"
	attrCircuit   attribute.Key = "ratelimit.circuit.state"
)

// circuitStates are the values of attrCircuit, as the circuit breaker's
// State prints them.
var circuitStates = [...]string{"closed", "open", "half-open"}

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
