package httplimit

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// settleTimeout bounds a settle. The settle runs after the handler, on a
// context that the client hanging up does not cancel, so something else
// must bound it; the limiter's own timeout of each Redis call (250 ms for
// algorithms.Limiter) ends it sooner, which is why no option changes it.
const settleTimeout = 2 * time.Second

// WithCost sets the cost of a request, in tokens, which the middleware
// checks and spends before the request reaches the handler: an estimate
// when the actual cost is known only at the end (an LLM call's maximum
// tokens, a batch's declared size). Values below 1 count as 1; a cost
// above the burst of a limit can never be admitted, and is refused with
// 403 Forbidden. Default: every request costs 1. A nil function keeps
// the default.
//
// With WithCost (or [WithResponseCost]), the actual cost, once the
// handler reports it with [SetCost] or its response shows it, is settled
// when the handler returns: the middleware calls SettleN(ctx, key,
// estimate, actual) of a [ratelimit.Settler] given to [Limit], or
// Settle(ctx, key, tier, estimate, actual) of the [tiers.Limiter] given
// to [New], which gives back what the request did not use or charges what
// it used beyond the estimate, into debt if need be (docs/quotas.md). A
// request admitted without spending tokens (by reject.Shadow over its
// limit, by a limiter's fallback, or unlimited after a store failure) is
// not settled.
func WithCost(estimate func(r *http.Request) int) Option {
	return optionFunc(func(c *config) {
		if estimate != nil {
			c.cost = estimate
		}
	})
}

// WithResponseCost sets a function that reads a request's actual cost
// from its response's header fields, once the handler has returned: for a
// handler that is not yours to change, such as an
// httputil.ReverseProxy in front of a service that reports its usage in a
// header or a trailer (both are in h by then). It returns ok false when
// the response does not say. A cost the handler reported with [SetCost]
// wins; a handler that panicked is settled only from SetCost. The cost is
// settled as [WithCost] describes, against WithCost's estimate (1 without
// it). Default: none. A nil function keeps the default.
func WithResponseCost(f func(r *http.Request, h http.Header) (actual int, ok bool)) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.respCost = f
		}
	})
}

// costKey is the context key of a request's *reported.
type costKey struct{}

// reported is the actual cost a handler reports for its request.
type reported struct {
	mu     sync.Mutex // protects actual and closed
	actual int        // -1 until SetCost
	closed bool       // the middleware has taken actual
}

// SetCost reports the actual cost, in tokens, of the request whose
// context is ctx (the r.Context() of a handler behind a middleware with
// [WithCost] or [WithResponseCost]), to be settled against the estimate the middleware spent
// once the handler returns. The last cost reported before the handler
// returns is settled; a handler that reports none keeps the estimate as
// the cost. SetCost may be called from any goroutine.
//
// It returns false, and does nothing, when there is nothing to settle:
// ctx is not the request's of such a middleware, the limiter cannot settle (it is not a
// [ratelimit.Settler]), the request spent no tokens (see WithCost), the
// handler has returned, or actual is negative.
func SetCost(ctx context.Context, actual int) bool {
	c, _ := ctx.Value(costKey{}).(*reported)
	if c == nil || actual < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.actual = actual
	return true
}

// take closes c and returns the cost reported, if any.
func (c *reported) take() (actual int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.actual, c.actual >= 0
}

// serveSettled serves an admitted request that spent reserved tokens,
// and settles the cost its handler reports with SetCost (or else its
// response shows, to WithResponseCost) when the handler returns, or
// panics: the tokens of a request whose handler panicked
// after reporting its cost are settled too, and one that reported none
// keeps its estimate spent, since the work may have been done. The
// response ends after the settle, so that the client's next request sees
// its effect.
func (m *middleware) serveSettled(w http.ResponseWriter, r *http.Request, next http.Handler, key, tier string, reserved int) {
	c := &reported{actual: -1}
	r = r.WithContext(context.WithValue(r.Context(), costKey{}, c))
	returned := false
	defer func() {
		actual, ok := c.take()
		if !ok && returned && m.cfg.respCost != nil {
			actual, ok = m.cfg.respCost(r, w.Header())
			ok = ok && actual >= 0
		}
		if ok && actual != reserved {
			m.settleCost(r, key, tier, reserved, actual)
		}
	}()
	next.ServeHTTP(w, r)
	returned = true
}

// settleCost settles the request's cost, on a context bounded by the
// settle timeout that the client hanging up does not cancel. A failure
// is logged (at most once a second, with the count of those held back)
// and does not change the response.
func (m *middleware) settleCost(r *http.Request, key, tier string, reserved, actual int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), settleTimeout)
	defer cancel()
	err := m.settle(ctx, key, tier, reserved, actual)
	if err == nil {
		return
	}
	if suppressed, ok := m.settleLog.allow(); ok {
		m.cfg.logger.LogAttrs(r.Context(), slog.LevelWarn, "httplimit: settle failed",
			slog.Int("reserved", reserved),
			slog.Int("actual", actual),
			slog.Any("err", err),
			slog.Int64("suppressed", suppressed))
	}
}
