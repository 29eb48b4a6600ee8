package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// Limiter records the decisions of the [ratelimit.Limiter] it wraps: how
// many it admits, denies and shadows, by source; how many checks fail, and
// why; how long a sample of them takes. See docs/metrics.md for the
// metrics.
//
// # Cost
//
// A check costs one atomic add, to a counter that the calling goroutine
// shares with few others (the counters are striped), and no allocation:
// the check is counted before it is made, as allowed and local (the
// leased hit path's outcome), and any other outcome is counted after it,
// in a counter of its own, and subtracted. A check still in progress at a
// collection is therefore reported as allowed and local until it ends.
// The counters are exported through observable instruments, read once per
// collection. One check in [WithSampleEvery] (64 by default) is also
// timed into a histogram. With the no-op meter provider the Limiter only
// forwards calls.
//
// Calling through the Limiter adds a call layer that returns a
// [ratelimit.Decision]; on the leased hit path that layer costs more than
// the recording (see docs/metrics.md).
//
// # Shadowed requests
//
// A rejection layer that admits a denied request anyway (shadow mode, such
// as reject.Shadow) reports it with [Limiter.RecordShadowed]: the decision
// then counts as shadowed instead of denied, so that the ratelimit.result
// values split the decisions.
//
// A Limiter counts the decisions of a limiter that is not a leasing one:
// [ObserveLease] counts those.
//
// A Limiter is safe for concurrent use. Create it with [Wrap]; the zero
// value is not usable.
type Limiter struct {
	inner ratelimit.Limiter
	ref   ratelimit.Refunder // nil if inner cannot refund
	off   bool               // no-op provider: forward only

	sampleMask int64 // a check is timed when its stripe's call count is a multiple of sampleMask+1
	shift      uint  // 64 - log2(len(stripes))
	stripes    []stripe

	hist            metric.Float64Histogram
	decisions, errs metric.Int64ObservableCounter
	obs             seriesOptions[metric.ObserveOption]
	rec             seriesOptions[metric.RecordOption] // shadowings are not timed
	reg             metric.Registration

	mu         sync.Mutex        // protects lastLocal and lastDenied
	lastLocal  int64             // largest allowed-and-local count reported
	lastDenied [numSources]int64 // largest denied count reported, per source
	closed     atomic.Bool       // set by Close
}

var (
	_ ratelimit.Limiter  = (*Limiter)(nil)
	_ ratelimit.Refunder = (*Limiter)(nil)
)

// seriesOptions are the precomputed attribute sets of the decision
// metrics' series, as options of one kind (observe or record).
type seriesOptions[O any] struct {
	decided [numResults][numSources][]O
	failed  [numErrorKinds][]O
}

// Wrap returns a Limiter that records the decisions of l. It creates its
// instruments and registers their callback on the meter of the
// [WithMeterProvider] provider, and returns the errors of doing so.
//
// Wrap refuses a leasing limiter (one that is a [LeaseStats], such as a
// [*lease.Limiter]): the lease counts its own decisions, for less than the
// wrapper costs, and [ObserveLease] reports them. So each decision is
// counted one way only, and never twice.
//
// Decisions of the failure policy count once, as ratelimit.decisions with
// ratelimit.source=fallback: a FailClosed denial, which also returns a
// store error, counts as denied by the fallback, not as a failed check.
//
// The Limiter's RefundN forwards to l if l is a [ratelimit.Refunder];
// otherwise it fails with an error matching
// [algorithms.ErrRefundUnsupported]. Check [Limiter.CanRefund] where that
// matters: a Limiter always has the method.
//
// Call [Limiter.Close] when done with it: it stops reporting, and closes l
// if l has a Close(context.Context) error method.
func Wrap(l ratelimit.Limiter, opts ...WrapOption) (*Limiter, error) {
	if l == nil {
		return nil, errors.New("telemetry: Wrap of a nil Limiter")
	}
	if _, ok := l.(LeaseStats); ok {
		return nil, fmt.Errorf("telemetry: Wrap of a leasing limiter (%T): observe it with ObserveLease, which counts its decisions", l)
	}
	return wrap(l, newConfig(opts, WrapOption.applyWrap))
}

// wrap is Wrap with its options applied, for a limiter that is not a
// leasing one.
func wrap(l ratelimit.Limiter, c config) (*Limiter, error) {
	t := &Limiter{inner: l}
	t.ref, _ = l.(ratelimit.Refunder)
	if _, ok := c.mp.(noop.MeterProvider); ok {
		t.off = true
		return t, nil
	}
	t.stripes, t.shift = newStripes()
	t.sampleMask = -1 // never: counts are positive
	if c.sampleEvery > 0 {
		t.sampleMask = int64(1)<<bits.Len(uint(c.sampleEvery-1)) - 1
	}

	base := c.baseAttrs()
	for r := range numResults {
		for src := range numSources {
			set := withAttrs(base, attrResult.String(r.String()), attrSource.String(sourceName(src)))
			t.obs.decided[r][src] = []metric.ObserveOption{metric.WithAttributeSet(set)}
			t.rec.decided[r][src] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
	}
	for k := range numErrorKinds {
		set := withAttrs(base, attrErrorType.String(k.String()))
		t.obs.failed[k] = []metric.ObserveOption{metric.WithAttributeSet(set)}
		t.rec.failed[k] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}

	m := c.meter()
	var errs [4]error
	t.decisions, errs[0] = m.Int64ObservableCounter(metricDecisions,
		metric.WithUnit(unitDecision),
		metric.WithDescription(descDecisions))
	t.errs, errs[1] = m.Int64ObservableCounter(metricDecisionErrors,
		metric.WithUnit(unitError),
		metric.WithDescription("Checks that could not decide, by error type."))
	t.hist, errs[2] = m.Float64Histogram(metricDecisionDuration,
		metric.WithUnit(unitSeconds),
		metric.WithDescription("Time to decide, for a random sample of decisions and failed checks."),
		metric.WithExplicitBucketBoundaries(decisionBuckets...))
	if err := errors.Join(errs[:3]...); err != nil {
		return nil, fmt.Errorf("telemetry: instruments: %w", err)
	}
	t.reg, errs[3] = m.RegisterCallback(t.observe, t.decisions, t.errs)
	if errs[3] != nil {
		return nil, fmt.Errorf("telemetry: callback: %w", errs[3])
	}
	return t, nil
}

// baseAttrs returns the attributes of c's WithAttributes, then the tier
// and limit attributes that are set.
func (c *config) baseAttrs() []attribute.KeyValue {
	kv := append([]attribute.KeyValue(nil), c.attrs...)
	if c.tier != "" {
		kv = append(kv, attrTier.String(c.tier))
	}
	if c.limit != "" {
		kv = append(kv, attrLimit.String(c.limit))
	}
	return kv
}

// withAttrs returns the set of base and kv; of two values of one key, the
// last wins.
func withAttrs(base []attribute.KeyValue, kv ...attribute.KeyValue) attribute.Set {
	all := make([]attribute.KeyValue, 0, len(base)+len(kv))
	return attribute.NewSet(append(append(all, base...), kv...)...)
}

// Unwrap returns the wrapped Limiter.
func (l *Limiter) Unwrap() ratelimit.Limiter { return l.inner }

// CanRefund reports whether the wrapped Limiter is a [ratelimit.Refunder].
func (l *Limiter) CanRefund() bool { return l.ref != nil }

// Allow is shorthand for AllowN(ctx, key, 1). It calls the wrapped
// Limiter's AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (d ratelimit.Decision, err error) {
	// The body repeats AllowN's rather than calling it: on the hit path, a
	// call that returns a Decision costs more than the counting.
	if l.off {
		d, err = l.inner.AllowN(ctx, key, 1)
		return
	}
	st := l.stripe()
	var start time.Time
	if st.calls.Add(1)&l.sampleMask == 0 {
		start = time.Now()
	}
	d, err = l.inner.AllowN(ctx, key, 1)
	if !start.IsZero() || err != nil || !d.Allowed || d.Source != ratelimit.SourceLocal {
		l.end(ctx, st, start, d.Allowed, d.Source, err)
	}
	return
}

// AllowN calls the wrapped Limiter's AllowN and records its outcome.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (d ratelimit.Decision, err error) {
	if l.off {
		d, err = l.inner.AllowN(ctx, key, n)
		return
	}
	// The check is counted before it is made, as allowed and local, the
	// leased hit path's outcome: an atomic add before the call costs less
	// than one after it, which must wait for the decision's stores. Any
	// other outcome is counted after, in a counter of its own, and subtracted.
	st := l.stripe()
	var start time.Time
	if st.calls.Add(1)&l.sampleMask == 0 {
		start = time.Now()
	}
	d, err = l.inner.AllowN(ctx, key, n)
	if !start.IsZero() || err != nil || !d.Allowed || d.Source != ratelimit.SourceLocal {
		l.end(ctx, st, start, d.Allowed, d.Source, err)
	}
	return
}

// end records an outcome other than the counted-in-advance allowed and
// local one, and the duration of a timed check.
func (l *Limiter) end(ctx context.Context, c *counts, start time.Time, ok bool, src ratelimit.Source, err error) {
	var elapsed time.Duration
	if !start.IsZero() {
		elapsed = time.Since(start)
	}
	var opts []metric.RecordOption
	if err != nil && (ok || src != ratelimit.SourceFallback) {
		k := errorKindOf(err)
		c.failed[k].Add(1)
		opts = l.rec.failed[k]
	} else { // a decision; a FailClosed denial comes with a store error
		r, s := denied, sourceIndex(src)
		if ok {
			r = allowed
		}
		if r != allowed || s != local {
			c.decided[r][s].Add(1)
		}
		opts = l.rec.decided[r][s]
	}
	if !start.IsZero() {
		l.hist.Record(ctx, elapsed.Seconds(), opts...)
	}
}

// RecordShadowed records that the request denied by d, a decision this
// Limiter returned, was admitted anyway by a rejection layer in shadow
// mode: the decision moves from the denied to the shadowed count of its
// source. Allowed decisions are ignored. It costs one atomic add.
//
// With the reject package's Shadow strategy:
//
//	tl, _ := telemetry.Wrap(lim, telemetry.WithLimit("free", ""))
//	shadow := reject.NewShadow(func(_ context.Context, r reject.Request) {
//		tl.RecordShadowed(r.Decision)
//	})
//
// A layer that does not know the concrete type can check for the
// [ShadowRecorder] interface.
func (l *Limiter) RecordShadowed(d ratelimit.Decision) {
	if l.off || d.Allowed {
		return
	}
	l.stripe().decided[shadowed][sourceIndex(d.Source)].Add(1)
}

// A ShadowRecorder records requests that a rejection layer admitted
// although their limiter denied them. [*Limiter] implements it.
type ShadowRecorder interface {
	RecordShadowed(d ratelimit.Decision)
}

var _ ShadowRecorder = (*Limiter)(nil)

// RefundN forwards to the wrapped Limiter if it is a [ratelimit.Refunder],
// and otherwise fails with an error matching
// [algorithms.ErrRefundUnsupported].
func (l *Limiter) RefundN(ctx context.Context, key string, n int) error {
	if l.ref == nil {
		return fmt.Errorf("%w: %T is not a ratelimit.Refunder", algorithms.ErrRefundUnsupported, l.inner)
	}
	return l.ref.RefundN(ctx, key, n)
}

// Close stops reporting the Limiter's metrics and closes the wrapped
// Limiter if it has a Close(context.Context) error method. Later calls
// still reach the wrapped Limiter and are counted, but no longer
// reported. Close is idempotent; calls after the first return nil.
func (l *Limiter) Close(ctx context.Context) error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	var err error
	if l.reg != nil {
		err = l.reg.Unregister()
	}
	if c, ok := l.inner.(interface{ Close(context.Context) error }); ok {
		err = errors.Join(err, c.Close(ctx))
	}
	return err
}
