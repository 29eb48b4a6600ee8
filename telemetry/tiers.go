package telemetry

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// Factory returns a [tiers.Factory] that makes each limiter with f and
// reports its metrics, with the Spec's tier and limit names as the
// ratelimit.tier and ratelimit.limit attributes: telemetry for a whole
// tiers.Limiter in one call.
//
//	plans, err := tiers.New(telemetry.Factory(tiers.Redis(rdb, nil)), cfg)
//
// A leasing limiter (a [*lease.Limiter]) is observed with [ObserveLease]:
// its own counts give ratelimit.decisions, and its hit path pays no
// wrapper. Any other limiter is wrapped with [Wrap]. Either way each
// decision, a decision of the failure policy included
// (ratelimit.source=fallback), counts once, in ratelimit.decisions; each
// leasing limiter also reports the lease metrics and
// ratelimit.circuit.state, the state of its circuit breaker.
//
// Each limit counts the checks it makes: a request counts once per limit
// it was checked against (limits after a denying one are not checked).
// Leasing limiters report no ratelimit.decision.duration and no
// ratelimit.decision.errors: wrap the tiers.Limiter itself, with [Wrap],
// to time and count whole checks too.
//
// A tier's override limits are limiters of their own with the same names;
// their counters add up with the tier's, their gauges are reported for one
// of them.
//
// The limiters it returns stop reporting when the tiers.Limiter closes
// them (after a reload, or on Close). If reporting cannot start, the
// limiter f made is closed and the Spec fails with the error.
func Factory(f tiers.Factory, opts ...FactoryOption) tiers.Factory {
	if f == nil {
		return nil // tiers.New refuses it
	}
	base := newConfig(opts, FactoryOption.applyFactory)
	return func(s tiers.Spec) (ratelimit.Limiter, error) {
		l, err := f(s)
		if err != nil || l == nil {
			return l, err
		}
		c := base
		c.tier, c.limit = s.Tier, s.Limit.Name
		var out ratelimit.Limiter
		if ll, ok := l.(*lease.Limiter); ok {
			var reg metric.Registration
			if reg, err = observeLease(ll, c); err == nil {
				out = &observedLease{Limiter: ll, reg: reg}
			}
		} else {
			out, err = wrap(l, c)
		}
		if err != nil {
			if c, ok := l.(interface{ Close(context.Context) error }); ok {
				err = errors.Join(err, c.Close(context.Background()))
			}
			return nil, err // tiers names the limit and the tier
		}
		return out, nil
	}
}

// observedLease is a leasing limiter observed by ObserveLease. Its
// methods are the lease's own (embedding a pointer as the first field
// makes them jumps, not calls), but for Close, which also stops the
// reporting.
type observedLease struct {
	*lease.Limiter
	reg    metric.Registration
	closed atomic.Bool
}

var (
	_ ratelimit.Limiter  = (*observedLease)(nil)
	_ ratelimit.Refunder = (*observedLease)(nil)
	_ LeaseStats         = (*observedLease)(nil)
)

// Close stops reporting, then closes the lease. It is idempotent.
func (l *observedLease) Close(ctx context.Context) error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	return errors.Join(l.reg.Unregister(), l.Limiter.Close(ctx))
}
