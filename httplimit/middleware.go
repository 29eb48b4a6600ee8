// Package httplimit is HTTP middleware that rate-limits requests with a
// [tiers.Limiter].
//
// For each request the middleware extracts a client key ([ClientIP],
// [Header], or a [KeyFunc] of your own), checks it against every limit of
// the client's tier, and then:
//
//   - under the limit: serves the request, with the RateLimit-Policy and
//     RateLimit header fields of draft-ietf-httpapi-ratelimit-headers
//     showing what remains;
//   - over the limit: lets the [reject.Strategy] decide (reject.Reject by
//     default). A refusal is answered 429 Too Many Requests (or the
//     reject.Status strategy's code and body) with Retry-After in whole
//     seconds, rounded up, and the same RateLimit fields; a strategy that
//     admits (Wait, Queue, Shadow) serves the request;
//   - when the store fails (Redis down or too slow: errors.Is(err,
//     ratelimit.ErrStore)): follows the [FailurePolicy], serving the
//     request unlimited by default (FailOpen) or answering 503 Service
//     Unavailable (FailClosed), and logs through log/slog;
//   - when the request has no usable key: answers 400 Bad Request;
//   - when the client has no plan (no rule assigns it a tier and there is
//     no default tier, or a tier the config does not have is named) or its
//     tier cannot be resolved (the WithTier function or the tiers.Resolver
//     fails): answers 403 Forbidden, whatever the failure policy;
//   - when the limiter is closed: answers 503 Service Unavailable.
//
// Only store failures are subject to the failure policy: no other error
// lets a request through unlimited.
//
// For example, with a tier "free" whose limit "second" allows 5 requests
// per second (GCRA, burst 5), a refused request gets
//
//	HTTP/1.1 429 Too Many Requests
//	Retry-After: 1
//	RateLimit-Policy: "free.second";q=5;w=1
//	RateLimit: "free.second";r=0;t=1
//
// # Header fields
//
// Each limit of the tier is one policy, named "<tier>.<limit>" whatever
// the number of limits, so names never change when a tier gains or loses
// a limit. RateLimit-Policy lists every limit of the client's tier:
//
//   - a token bucket or GCRA limit admits Burst requests at once and
//     refills them in Burst × Period / Rate: q is Burst and w that time;
//   - a fixed or sliding window limit admits Burst requests per Period: q
//     is Burst and w the Period;
//   - w is in whole seconds, at least 1: a window that is not is rounded
//     up, and q scaled to the same rate (rounded down, never below Burst).
//     A limit whose limiter does not report its algorithm (such as a
//     leasing limiter, which runs the token bucket) is described as a
//     token bucket.
//
// RateLimit lists the limits checked for the request; on a refusal, only
// the limits that refused. r is the requests the limit has left, and t
// the seconds, rounded up, until it has more (the draft's "time until
// additional quota"), not until it is full:
//
//   - a refusal: the time until the request could be admitted;
//   - a bucket: the time until its next token;
//   - a fixed window: the end of the window;
//   - a sliding window: the time by which a request has certainly left the
//     estimate (exact when the previous window was empty, which the
//     decision does not show; otherwise quota may return sooner).
//
// A limit that has all its quota has no t. Retry-After, on a refusal, is
// never earlier than any t of the response. Values are bounded to what a
// structured-field Integer can carry.
package httplimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// A FailurePolicy says what the middleware does with a request whose
// check failed, for example because Redis is unreachable. The zero value
// is FailOpen.
type FailurePolicy uint8

const (
	// FailOpen serves the request without limiting it, and logs the
	// failure (at most once a second, counting the ones it skips).
	FailOpen FailurePolicy = iota
	// FailClosed answers 503 Service Unavailable, and logs the failure.
	FailClosed
)

// String returns "open" or "closed".
func (p FailurePolicy) String() string {
	if p == FailClosed {
		return "closed"
	}
	return "open"
}

// New returns middleware that limits the requests of the handler it wraps
// with l, as the package documentation describes. The middleware is safe
// for concurrent use.
func New(l *tiers.Limiter, opts ...Option) func(http.Handler) http.Handler {
	m := &middleware{l: l, cfg: newConfig(opts)}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}
}

// An Option configures the middleware.
type Option interface{ apply(*config) }

type config struct {
	key      KeyFunc
	tier     func(*http.Request) (string, error)
	strategy reject.Strategy
	policy   FailurePolicy
	logger   *slog.Logger
	headers  bool
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func newConfig(opts []Option) config {
	c := config{
		key:      ClientIP(),
		strategy: reject.Reject(),
		policy:   FailOpen,
		headers:  true,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithKey sets how the client key is extracted. Default: ClientIP() with
// no trusted proxies (the peer address; X-Forwarded-For ignored). A nil
// KeyFunc keeps the default.
func WithKey(f KeyFunc) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.key = f
		}
	})
}

// WithTier sets a function that names the tier of a request (for example
// from an authenticated plan). An empty name, or no function, leaves the
// tier to the Limiter's resolution from the client key. An error fails the
// check (see FailurePolicy). Default: none.
func WithTier(f func(r *http.Request) (string, error)) Option {
	return optionFunc(func(c *config) { c.tier = f })
}

// WithStrategy sets what happens to a request over its limit. Default:
// reject.Reject(). A nil Strategy keeps the default.
func WithStrategy(s reject.Strategy) Option {
	return optionFunc(func(c *config) {
		if s != nil {
			c.strategy = s
		}
	})
}

// WithFailurePolicy sets what happens to a request whose check failed.
// Default: FailOpen.
func WithFailurePolicy(p FailurePolicy) Option {
	return optionFunc(func(c *config) { c.policy = p })
}

// WithLogger sets where failed checks are logged. Default: slog.Default()
// at the time of New. A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithHeaders sets whether responses carry the RateLimit-Policy and
// RateLimit fields. Retry-After is always sent with a refusal. Default:
// true.
func WithHeaders(on bool) Option {
	return optionFunc(func(c *config) { c.headers = on })
}

type middleware struct {
	l   *tiers.Limiter
	cfg config

	lastLog    atomic.Int64 // UnixNano of the last failure logged
	suppressed atomic.Int64 // failures not logged since then
}

var (
	bodyBadKey      = []byte("missing or invalid client key\n")
	bodyUnavailable = []byte("rate limiter unavailable\n")
	bodyNoPlan      = []byte("no rate limit plan for this client\n")
)

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	key, err := m.cfg.key(r)
	if err == nil {
		err = ratelimit.ValidateKey(key)
	}
	if err != nil {
		m.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "httplimit: no client key", slog.Any("err", err))
		writeBody(w, http.StatusBadRequest, "text/plain; charset=utf-8", bodyBadKey)
		return
	}
	rl := &requestLimiter{l: m.l}
	if m.cfg.tier != nil {
		if rl.tier, err = m.cfg.tier(r); err != nil {
			m.failed(w, r, next, fmt.Errorf("httplimit: tier of request: %w", err))
			return
		}
	}
	d, err := rl.AllowN(ctx, key, 1)
	if err == nil && !d.Allowed {
		_, err = m.cfg.strategy.Handle(ctx, reject.Request{Limiter: rl, Key: key, N: 1, Decision: d})
	}
	res, _ := rl.result()
	var ex *ratelimit.ExceededError
	switch {
	case err == nil:
		if m.cfg.headers {
			setRateLimitHeaders(w.Header(), policiesOf(res), false)
		}
		next.ServeHTTP(w, r)
	case errors.As(err, &ex):
		m.refuse(w, res, err, ex)
	case ctx.Err() != nil:
		// The client has gone; nobody will read an answer.
	default:
		m.failed(w, r, next, err)
	}
}

// failed answers a request whose check failed with err. Only a store
// failure is subject to the failure policy; any other error (no tier for
// the client, an unknown tier, a failing WithTier function or resolver, a
// closed limiter) refuses the request without serving it.
func (m *middleware) failed(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	switch {
	case errors.Is(err, ratelimit.ErrStore):
		m.fail(w, r, next, err)
	case errors.Is(err, ratelimit.ErrClosed):
		m.logFailure(r, err, "refused with 503")
		w.Header().Set(HeaderRetryAfter, "1")
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", bodyUnavailable)
	case errors.Is(err, tiers.ErrUnknownTier):
		m.cfg.logger.LogAttrs(r.Context(), slog.LevelDebug, "httplimit: no tier for client", slog.Any("err", err))
		writeBody(w, http.StatusForbidden, "text/plain; charset=utf-8", bodyNoPlan)
	default:
		m.logFailure(r, err, "refused with 403")
		writeBody(w, http.StatusForbidden, "text/plain; charset=utf-8", bodyNoPlan)
	}
}

// refuse answers a request the strategy refused.
func (m *middleware) refuse(w http.ResponseWriter, res tiers.Result, err error, ex *ratelimit.ExceededError) {
	h := w.Header()
	retry := max(ceilSeconds(ex.Decision.RetryAfter), 1)
	if m.cfg.headers {
		// Retry-After is never earlier than a t the response carries.
		retry = max(retry, setRateLimitHeaders(h, policiesOf(res), true))
	}
	h.Set(HeaderRetryAfter, strconv.FormatInt(retry, 10))
	code, ctype, body := http.StatusTooManyRequests, "text/plain; charset=utf-8", []byte("rate limit exceeded\n")
	var se *reject.StatusError
	if errors.As(err, &se) {
		code, ctype, body = se.Code, se.ContentType, se.Body
	}
	writeBody(w, code, ctype, body)
}

// fail applies the failure policy to a request whose store failed.
func (m *middleware) fail(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	if m.cfg.policy == FailClosed {
		m.logFailure(r, err, "refused with 503 (fail closed)")
		w.Header().Set(HeaderRetryAfter, "1")
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", bodyUnavailable)
		return
	}
	m.logFailure(r, err, "served unlimited (fail open)")
	next.ServeHTTP(w, r)
}

// logFailure logs err, and what became of the request, at most once a
// second.
func (m *middleware) logFailure(r *http.Request, err error, outcome string) {
	now := time.Now().UnixNano()
	last := m.lastLog.Load()
	if now-last < int64(time.Second) || !m.lastLog.CompareAndSwap(last, now) {
		m.suppressed.Add(1)
		return
	}
	m.cfg.logger.LogAttrs(r.Context(), slog.LevelWarn, "httplimit: rate limit check failed",
		slog.String("request", outcome),
		slog.Bool("store", errors.Is(err, ratelimit.ErrStore)),
		slog.Any("err", err),
		slog.Int64("suppressed", m.suppressed.Swap(0)))
}

func writeBody(w http.ResponseWriter, code int, ctype string, body []byte) {
	h := w.Header()
	if len(body) > 0 {
		h.Set("Content-Type", ctype)
		h.Set("X-Content-Type-Options", "nosniff")
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// requestLimiter is the view of the Limiter that one request's strategy
// gets: it checks against the request's tier and remembers the last
// result, for the header fields.
type requestLimiter struct {
	l    *tiers.Limiter
	tier string

	mu   sync.Mutex // protects last, ok
	last tiers.Result
	ok   bool
}

var (
	_ ratelimit.Limiter  = (*requestLimiter)(nil)
	_ ratelimit.Refunder = (*requestLimiter)(nil)
)

func (rl *requestLimiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return rl.AllowN(ctx, key, 1)
}

func (rl *requestLimiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	res, err := rl.l.Check(ctx, key, rl.tier, n)
	if err != nil {
		return res.Decision, err
	}
	rl.mu.Lock()
	rl.last, rl.ok = res, true
	rl.mu.Unlock()
	return res.Decision, nil
}

func (rl *requestLimiter) RefundN(ctx context.Context, key string, n int) error {
	return rl.l.Refund(ctx, key, rl.tier, n)
}

func (rl *requestLimiter) result() (tiers.Result, bool) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.last, rl.ok
}
