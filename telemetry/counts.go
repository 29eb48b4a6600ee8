package telemetry

import (
	"context"
	"errors"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/metric"

	"github.com/distributedratelimiter/ratelimit"
	istripe "github.com/distributedratelimiter/ratelimit/internal/stripe"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// result is a decision's ratelimit.result.
type result uint8

const (
	allowed result = iota
	denied
	shadowed // denied, and admitted anyway by a rejection layer in shadow mode
	numResults
)

// String returns the ratelimit.result value of r.
func (r result) String() string {
	return [numResults]string{"allowed", "denied", "shadowed"}[r]
}

// numSources is the number of ratelimit.source values counted: every
// ratelimit.Source the package knows, then one for any other, which
// ratelimit.Source's String calls "unknown".
const numSources = int(ratelimit.SourceFallback) + 2

// sourceName returns the ratelimit.source value of the counts at index i.
func sourceName(i int) string { return ratelimit.Source(i).String() }

// sourceIndex returns the index of s's counts.
func sourceIndex(s ratelimit.Source) int { return min(int(s), numSources-1) }

// local is the index of ratelimit.SourceLocal.
const local = int(ratelimit.SourceLocal)

// errorKind classifies a check that failed: its error.type.
type errorKind uint8

const (
	errStore    errorKind = iota // ratelimit.ErrStore: Redis failed or replied badly
	errTimeout                   // a deadline passed (the caller's or the limiter's), or lease.ErrRefillWait
	errCanceled                  // the caller's context was cancelled
	errInvalid                   // an invalid key, n or limit
	errClosed                    // ratelimit.ErrClosed
	errOther
	numErrorKinds
)

// String returns the error.type value of k.
func (k errorKind) String() string {
	return [numErrorKinds]string{"store", "timeout", "canceled", "invalid", "closed", "other"}[k]
}

// errorKindOf returns the kind of err.
func errorKindOf(err error) errorKind {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, lease.ErrRefillWait):
		return errTimeout
	case errors.Is(err, context.Canceled):
		return errCanceled
	case errors.Is(err, ratelimit.ErrStore):
		return errStore
	case errors.Is(err, ratelimit.ErrInvalidKey), errors.Is(err, ratelimit.ErrInvalidN), errors.Is(err, ratelimit.ErrInvalidLimit):
		return errInvalid
	case errors.Is(err, ratelimit.ErrClosed):
		return errClosed
	}
	return errOther
}

// counts are the counters of a [Limiter], or one stripe's share of them.
// A check adds one to calls before it is made, and one to decided or
// failed after, unless it ends allowed and local: that count is calls less
// all the others (see [Limiter]).
type counts struct {
	calls   atomic.Int64                         // checks begun
	decided [numResults][numSources]atomic.Int64 // by result and source; [allowed][local] unused
	failed  [numErrorKinds]atomic.Int64          // checks that could not decide, by kind
}

// A stripe is one copy of a Limiter's counts. Decisions on different
// cores mostly add to different stripes, so the counters' cache lines do
// not bounce between cores; a collection sums the stripes. It is padded
// to 256 bytes (at most 64 stripes: 16 KiB a Limiter) so that no two
// stripes share a cache line, nor a pair of lines that the hardware
// prefetches together.
type stripe struct {
	counts
	_ [256 - unsafe.Sizeof(counts{})]byte
}

// newStripes returns the stripes for this process and the shift that maps
// a hash to one (see internal/stripe).
func newStripes() ([]stripe, uint) {
	n, shift := istripe.Cells()
	return make([]stripe, n), shift
}

// stripe returns the calling goroutine's counts (stripe.Pick).
func (l *Limiter) stripe() *counts { return &l.stripes[istripe.Pick(l.shift, 0)].counts }

// totals are counts summed over the stripes.
type totals struct {
	calls   int64
	decided [numResults][numSources]int64
	failed  [numErrorKinds]int64
}

// sum adds up the stripes. It reads the shadowed counts, then the other
// outcomes, then the calls: each is counted after the one read after it
// (a check is counted in calls before its outcome, a denial before its
// shadowing), so every count read is covered by the ones read later.
func (l *Limiter) sum() totals {
	var t totals
	for i := range l.stripes {
		for s := range numSources {
			t.decided[shadowed][s] += l.stripes[i].decided[shadowed][s].Load()
		}
	}
	for i := range l.stripes {
		st := &l.stripes[i]
		for s := range numSources {
			t.decided[allowed][s] += st.decided[allowed][s].Load()
			t.decided[denied][s] += st.decided[denied][s].Load()
		}
		for k := range numErrorKinds {
			t.failed[k] += st.failed[k].Load()
		}
	}
	for i := range l.stripes {
		t.calls += l.stripes[i].calls.Load()
	}
	return t
}

// observe is the callback of the observable counters.
func (l *Limiter) observe(_ context.Context, o metric.Observer) error {
	t := l.sum()
	// Allowed-and-local is what the other outcomes leave of the calls;
	// denied excludes what was shadowed since. A check in progress counts
	// as allowed and local, and a denial shadowed after a collection
	// counted it as denied; so each of these two counts holds at its last
	// reported value until the true count catches up, and never decreases.
	others := t.calls
	for s := range numSources {
		if s != local {
			others -= t.decided[allowed][s]
		}
		others -= t.decided[denied][s]
	}
	for k := range numErrorKinds {
		others -= t.failed[k]
	}
	l.mu.Lock()
	l.lastLocal = max(others, l.lastLocal)
	t.decided[allowed][local] = l.lastLocal
	for s := range numSources {
		d := max(t.decided[denied][s]-t.decided[shadowed][s], l.lastDenied[s])
		l.lastDenied[s] = d
		t.decided[denied][s] = d
	}
	l.mu.Unlock()

	for r := range numResults {
		for s := range numSources {
			if s == numSources-1 && t.decided[r][s] == 0 {
				continue // report the unknown source only if it occurs
			}
			o.ObserveInt64(l.decisions, t.decided[r][s], l.obs.decided[r][s]...)
		}
	}
	for k := range numErrorKinds {
		o.ObserveInt64(l.errs, t.failed[k], l.obs.failed[k]...)
	}
	return nil
}
