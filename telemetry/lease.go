package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// LeaseStats is what [ObserveLease] reads: a leasing limiter.
// [*lease.Limiter] implements it. To report the state of a circuit breaker
// of your own in ratelimit.circuit.state, return it in Stats().Breaker.
type LeaseStats interface {
	// Stats returns a snapshot of the limiter's running totals.
	Stats() lease.Stats
	// Limit returns the limit the limiter enforces.
	Limit() ratelimit.Limit
	// AccuracyBudget returns the accuracy budget the limiter was built
	// with (lease.WithAccuracyBudget); a value outside (0, 1] reports
	// lease.DefaultAccuracyBudget.
	AccuracyBudget() float64
}

var _ LeaseStats = (*lease.Limiter)(nil)

// leaseCounter is one observable counter fed by one field of lease.Stats.
type leaseCounter struct {
	name, unit, desc string
	field            func(*lease.Stats) int64
}

// leaseCounters are the counters of [ObserveLease], in a fixed order.
var leaseCounters = []leaseCounter{
	{metricLeaseTokensLeased, unitToken, "Tokens Redis granted to this instance's leases.",
		func(s *lease.Stats) int64 { return s.TokensLeased }},
	{metricLeaseTokensServed, unitToken, "Leased tokens spent by admitted requests, net of refunds.",
		func(s *lease.Stats) int64 { return s.TokensServed }},
	{metricLeaseTokensReturned, unitToken, "Unspent leased tokens given back to Redis (expired, evicted, closed).",
		func(s *lease.Stats) int64 { return s.TokensReturned }},
	{metricLeaseTokensExpired, unitToken, "Leased tokens taken back unspent because their lease outlived the lease TTL.",
		func(s *lease.Stats) int64 { return s.TokensExpired }},
	{metricLeaseRefills, unitRefill, "Lease calls to Redis, failed ones included.",
		func(s *lease.Stats) int64 { return s.Refills }},
	{metricLeasePrefetches, unitRefill, "Refills started in the background at the low watermark.",
		func(s *lease.Stats) int64 { return s.Prefetches }},
	{metricLeaseRefillErrors, unitRefill, "Lease calls to Redis that failed.",
		func(s *lease.Stats) int64 { return s.RefillErrors }},
	{metricLeaseWaits, unitWait, "Requests that found their key's leased tokens spent and waited for a refill.",
		func(s *lease.Stats) int64 { return s.Waits }},
	{metricLeaseDeniedLocal, unitDecision, "Denials answered from a remembered Redis denial, with no Redis call.",
		func(s *lease.Stats) int64 { return s.DeniedLocal }},
	{metricLeaseEvictions, unitKey, "Keys evicted for idleness.",
		func(s *lease.Stats) int64 { return s.Evicted }},
	{metricLeaseOverflows, unitRequest, "Requests checked with one Redis call each because the key cap was reached.",
		func(s *lease.Stats) int64 { return s.Overflow }},
	{metricLeaseReturnErrors, unitCall, "Returns of unspent tokens that could not reach Redis.",
		func(s *lease.Stats) int64 { return s.ReturnErrors }},
}

// leaseObserver holds the instruments and state of one [ObserveLease].
type leaseObserver struct {
	l        LeaseStats
	budget   int64
	counters []metric.Int64ObservableCounter
	held     metric.Int64ObservableGauge
	budgetG  metric.Int64ObservableGauge
	keys     metric.Int64ObservableGauge
	circuitG metric.Int64ObservableGauge
	decided  metric.Int64ObservableCounter
	outcomes [6][]metric.ObserveOption // see leaseOutcomes
	opts     []metric.ObserveOption
	states   [len(circuitStates)][]metric.ObserveOption

	mu          sync.Mutex // protects last and lastOutcome
	last        []int64    // largest value reported per counter
	lastOutcome [6]int64   // largest decision counts reported, as leaseOutcomes
}

// leaseOutcomes are the result and source of each decision count of
// lease.Stats, in the order of leaseOutcomeCounts.
var leaseOutcomes = [6]struct {
	r   result
	src ratelimit.Source
}{
	{allowed, ratelimit.SourceLocal}, {allowed, ratelimit.SourceRedis}, {allowed, ratelimit.SourceFallback},
	{denied, ratelimit.SourceLocal}, {denied, ratelimit.SourceRedis}, {denied, ratelimit.SourceFallback},
}

func leaseOutcomeCounts(s *lease.Stats) [6]int64 {
	return [6]int64{s.AllowedLocal, s.AllowedRedis, s.AllowedFallback, s.DeniedLocal, s.DeniedRedis, s.DeniedFallback}
}

// ObserveLease reports the running totals of a leasing limiter (see
// [lease.Stats]) through observable instruments, all read by one callback
// that takes one Stats snapshot per collection. Stats walks the limiter's
// keys, so a collection costs O(keys); requests pay nothing.
//
// Decisions: ratelimit.decisions, by result and source, from the limiter's
// own counts (Stats().AllowedLocal and the rest), which the lease keeps at
// about 2 ns per decision. This is the one way to count a leasing
// limiter's decisions: [Wrap] refuses one. Decisions of the failure policy
// are decisions like the others: they count in ratelimit.decisions with
// ratelimit.source=fallback (Stats().AllowedFallback and DeniedFallback,
// FailClosed denials included), and nowhere else.
//
// Accuracy: two gauges, ratelimit.lease.tokens.held, the tokens this
// instance holds now, and ratelimit.lease.tokens.budget, the most that one
// key's lease may hold (l.AccuracyBudget() times the burst, at least 1).
// The circuit breaker's state comes from Stats().Breaker.
//
// Observing several limiters on one provider needs distinct attributes
// ([WithLimit] or [WithAttributes]): their gauges would
// otherwise overwrite each other. Unregister the returned registration
// when the limiter is closed.
func ObserveLease(l LeaseStats, opts ...LeaseOption) (metric.Registration, error) {
	if l == nil {
		return nil, errors.New("telemetry: ObserveLease of nil")
	}
	return observeLease(l, newConfig(opts, LeaseOption.applyLease))
}

// observeLease is ObserveLease with its options applied.
func observeLease(l LeaseStats, c config) (metric.Registration, error) {
	budget := l.AccuracyBudget()
	if !(budget > 0 && budget <= 1) {
		budget = lease.DefaultAccuracyBudget
	}
	o := &leaseObserver{
		l:      l,
		budget: max(1, int64(math.Floor(budget*float64(l.Limit().Burst)))),
		last:   make([]int64, len(leaseCounters)),
	}
	base := c.baseAttrs()
	o.opts = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(base...))}
	for i, s := range circuitStates {
		o.states[i] = []metric.ObserveOption{metric.WithAttributeSet(withAttrs(base, attrCircuit.String(s)))}
	}
	for i, rs := range leaseOutcomes {
		set := withAttrs(base, attrResult.String(rs.r.String()), attrSource.String(rs.src.String()))
		o.outcomes[i] = []metric.ObserveOption{metric.WithAttributeSet(set)}
	}

	m := c.meter()
	var errs []error
	var insts []metric.Observable
	for _, lc := range leaseCounters {
		ctr, err := m.Int64ObservableCounter(lc.name, metric.WithUnit(lc.unit), metric.WithDescription(lc.desc))
		errs = append(errs, err)
		o.counters = append(o.counters, ctr)
		insts = append(insts, ctr)
	}
	var err error
	o.held, err = m.Int64ObservableGauge(metricLeaseTokensHeld, metric.WithUnit(unitToken),
		metric.WithDescription("Leased tokens this instance holds now, not yet spent or returned, over all keys."))
	errs = append(errs, err)
	o.budgetG, err = m.Int64ObservableGauge(metricLeaseTokensBudget, metric.WithUnit(unitToken),
		metric.WithDescription("The most tokens one key's lease may hold: the accuracy budget times the burst, at least 1."))
	errs = append(errs, err)
	o.keys, err = m.Int64ObservableGauge(metricLeaseKeys, metric.WithUnit(unitKey),
		metric.WithDescription("Keys this instance tracks now."))
	errs = append(errs, err)
	o.circuitG, err = m.Int64ObservableGauge(metricCircuitState, metric.WithUnit(unitState),
		metric.WithDescription("1 for the circuit breaker's current state, 0 for the others."))
	errs = append(errs, err)
	o.decided, err = m.Int64ObservableCounter(metricDecisions,
		metric.WithUnit(unitDecision),
		metric.WithDescription(descDecisions))
	errs = append(errs, err)
	insts = append(insts, o.held, o.budgetG, o.keys, o.circuitG, o.decided)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: instruments: %w", err)
	}
	reg, err := m.RegisterCallback(o.observe, insts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: callback: %w", err)
	}
	return reg, nil
}

func (o *leaseObserver) observe(_ context.Context, obs metric.Observer) error {
	s := o.l.Stats()
	// Stats reads its totals one after another while the limiter runs, so
	// a derived total (TokensServed) can dip for a moment. Counters must
	// not decrease: each reports the largest value it has seen.
	vals := make([]int64, len(leaseCounters))
	o.mu.Lock()
	for i, lc := range leaseCounters {
		v := max(lc.field(&s), o.last[i])
		o.last[i] = v
		vals[i] = v
	}
	outcomes := leaseOutcomeCounts(&s)
	for i, v := range outcomes {
		o.lastOutcome[i] = max(v, o.lastOutcome[i])
		outcomes[i] = o.lastOutcome[i]
	}
	o.mu.Unlock()
	for i, v := range outcomes {
		obs.ObserveInt64(o.decided, v, o.outcomes[i]...)
	}
	for i, ctr := range o.counters {
		obs.ObserveInt64(ctr, vals[i], o.opts...)
	}
	obs.ObserveInt64(o.held, s.TokensHeld, o.opts...)
	obs.ObserveInt64(o.budgetG, o.budget, o.opts...)
	obs.ObserveInt64(o.keys, s.Keys, o.opts...)
	if state := s.Breaker; state != "" { // a LeaseStats that knows no breaker
		for i, name := range circuitStates {
			var v int64
			if state == name {
				v = 1
			}
			obs.ObserveInt64(o.circuitG, v, o.states[i]...)
		}
	}
	return nil
}
