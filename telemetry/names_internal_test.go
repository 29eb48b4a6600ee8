package telemetry

import "testing"

// TestNameConstants pins the metric names and attribute keys this package
// writes on the wire, constant by constant: dashboards and alerts depend on
// them. TestMetricNames checks that each metric is reported under its name,
// with its unit and kind. A change here is a breaking change, to be made
// together with docs/metrics.md.
func TestNameConstants(t *testing.T) {
	pinned := []struct{ got, want string }{
		{ScopeName, "github.com/distributedratelimiter/ratelimit"},

		{metricDecisions, "ratelimit.decisions"},
		{metricDecisionDuration, "ratelimit.decision.duration"},
		{metricDecisionErrors, "ratelimit.decision.errors"},
		{metricRedisCalls, "ratelimit.redis.calls"},
		{metricRedisDuration, "ratelimit.redis.duration"},
		{metricLeaseTokensLeased, "ratelimit.lease.tokens.leased"},
		{metricLeaseTokensServed, "ratelimit.lease.tokens.served"},
		{metricLeaseTokensReturned, "ratelimit.lease.tokens.returned"},
		{metricLeaseTokensExpired, "ratelimit.lease.tokens.expired"},
		{metricLeaseTokensHeld, "ratelimit.lease.tokens.held"},
		{metricLeaseTokensBudget, "ratelimit.lease.tokens.budget"},
		{metricLeaseRefills, "ratelimit.lease.refills"},
		{metricLeasePrefetches, "ratelimit.lease.prefetches"},
		{metricLeaseRefillErrors, "ratelimit.lease.refill.errors"},
		{metricLeaseWaits, "ratelimit.lease.waits"},
		{metricLeaseDeniedLocal, "ratelimit.lease.local_denials"},
		{metricLeaseKeys, "ratelimit.lease.keys"},
		{metricLeaseEvictions, "ratelimit.lease.evictions"},
		{metricLeaseOverflows, "ratelimit.lease.overflows"},
		{metricLeaseReturnErrors, "ratelimit.lease.return.errors"},
		{metricCircuitState, "ratelimit.circuit.state"},

		{string(attrTier), "ratelimit.tier"},
		{string(attrLimit), "ratelimit.limit"},
		{string(attrResult), "ratelimit.result"},
		{string(attrSource), "ratelimit.source"},
		{string(attrErrorType), "error.type"},
		{string(attrScript), "ratelimit.script"},
		{string(attrOutcome), "ratelimit.outcome"},
		{string(attrCircuit), "ratelimit.circuit.state"},
	}
	for _, p := range pinned {
		if p.got != p.want {
			t.Errorf("name %q, want %q", p.got, p.want)
		}
	}
}

// TestAttributeValues pins the values of the attributes with a fixed set.
func TestAttributeValues(t *testing.T) {
	var got []string
	for r := range numResults {
		got = append(got, r.String())
	}
	for s := range numSources {
		got = append(got, sourceName(s))
	}
	for k := range numErrorKinds {
		got = append(got, k.String())
	}
	for o := range numOutcomes {
		got = append(got, o.String())
	}
	got = append(got, circuitStates[:]...)
	want := []string{
		"allowed", "denied", "shadowed",
		"redis", "local", "fallback", "unknown",
		"store", "timeout", "canceled", "invalid", "closed", "other",
		"ok", "error", "timeout", "noscript", "canceled",
		"closed", "open", "half-open",
	}
	if len(got) != len(want) {
		t.Fatalf("values %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: %q, want %q", i, got[i], want[i])
		}
	}
}
