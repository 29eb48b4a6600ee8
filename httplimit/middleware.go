package httplimit

import (
	"cmp"
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
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// DefaultPolicyName is the name of the one policy of a [Limit] middleware
// in the header fields.
const DefaultPolicyName = "default"

// Limit returns middleware that limits the requests of the handler it
// wraps with l, one limit for every client: by default each client IP
// ([ClientIP]) has its own budget. Responses carry the same header fields
// as those of [New], with one policy named [DefaultPolicyName], and
// over-limit requests go to the same strategies. For example, 100
// requests a minute per client IP:
//
//	lim, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(100))
//	...
//	http.Handle("/", httplimit.Limit(lim)(api))
//
// If l is a [*tiers.Limiter], Limit is New(l, opts...). Limit panics if l
// is nil. The middleware is safe for concurrent use.
func Limit(l ratelimit.Limiter, opts ...Option) func(http.Handler) http.Handler {
	if l == nil {
		panic("httplimit: Limit with a nil Limiter")
	}
	if tl, ok := l.(*tiers.Limiter); ok {
		plan := make([]PlanOption, len(opts))
		for i, o := range opts {
			plan[i] = o // a nil Option is a nil PlanOption
		}
		return New(tl, plan...)
	}
	s := &single{l: l}
	s.ref, _ = l.(ratelimit.Refunder)
	s.set, _ = l.(ratelimit.Settler)
	if ar, ok := l.(interface{ Algorithm() algorithms.Algorithm }); ok {
		s.alg = ar.Algorithm()
	}
	s.byKey, _ = l.(limiterByKey)
	cfg := newConfig(opts)
	s.name = cmp.Or(cfg.name, DefaultPolicyName)
	return handler(&middleware{b: s, cfg: cfg})
}

// New returns middleware that limits the requests of the handler it wraps
// with the plans of l: each request is checked against every limit of its
// client's tier, as the package documentation describes. New panics if l
// is nil. The middleware is safe for concurrent use.
func New(l *tiers.Limiter, opts ...PlanOption) func(http.Handler) http.Handler {
	if l == nil {
		panic("httplimit: New with a nil *tiers.Limiter")
	}
	cfg := newPlanConfig(opts)
	return handler(&middleware{b: plans{l: l, prefix: cfg.name}, cfg: cfg})
}

func handler(m *middleware) func(http.Handler) http.Handler {
	if m.cfg.cost != nil || m.cfg.respCost != nil {
		m.settle = m.b.settler()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}
}

// A backend is what the middleware checks requests against: a
// tiers.Limiter or a single limiter.
type backend interface {
	// check checks n tokens of key, in the tier named tier (plans only;
	// "" resolves it), and returns the combined decision, what each
	// limit decided and the tier it resolved ("" for a single limiter).
	check(ctx context.Context, key, tier string, n int) (ratelimit.Decision, []policy, string, error)
	// refunder returns the backend's refund, or nil if it cannot.
	refunder() func(ctx context.Context, key, tier string, n int) error
	// settler returns the backend's settle, or nil if it cannot.
	settler() func(ctx context.Context, key, tier string, reserved, actual int) error
}

// plans is the backend of New.
type plans struct {
	l      *tiers.Limiter
	prefix string // of the policies' names (WithPolicyName); "" for none
}

func (p plans) check(ctx context.Context, key, tier string, n int) (ratelimit.Decision, []policy, string, error) {
	res, err := p.l.Check(ctx, key, tier, n)
	return res.Decision, policiesOf(res, key, p.prefix), res.Tier, err
}

func (p plans) refunder() func(ctx context.Context, key, tier string, n int) error { return p.l.Refund }

func (p plans) settler() func(ctx context.Context, key, tier string, reserved, actual int) error {
	return p.l.Settle
}

// single is the backend of Limit.
type single struct {
	l    ratelimit.Limiter
	name string               // of its policy: DefaultPolicyName, or WithPolicyName's
	ref  ratelimit.Refunder   // nil if l cannot refund
	set  ratelimit.Settler    // nil if l cannot settle
	alg  algorithms.Algorithm // what l reports it runs; nil if it does not say
	// byKey is l if its limiter, and so its algorithm, depends on the key
	// (a ratelimit.Dynamic of algorithms.Limiters); else nil.
	byKey limiterByKey
}

// limiterByKey is a limiter that checks each key with an
// algorithms.Limiter of its own, as a ratelimit.Dynamic of them does.
type limiterByKey interface {
	Limiter(ctx context.Context, key string) (*algorithms.Limiter, error)
}

func (s *single) check(ctx context.Context, key, _ string, n int) (ratelimit.Decision, []policy, string, error) {
	d, err := s.l.AllowN(ctx, key, n)
	alg := s.alg
	if s.byKey != nil && err == nil {
		if l, lerr := s.byKey.Limiter(ctx, key); lerr == nil {
			alg = l.Algorithm()
		}
	}
	return d, []policy{{name: s.name, limit: d.Limit, alg: alg, partition: "c:" + key, checked: err == nil, d: d}}, "", err
}

func (s *single) settler() func(ctx context.Context, key, tier string, reserved, actual int) error {
	if s.set == nil {
		return nil
	}
	return func(ctx context.Context, key, _ string, reserved, actual int) error {
		return s.set.SettleN(ctx, key, reserved, actual)
	}
}

func (s *single) refunder() func(ctx context.Context, key, tier string, n int) error {
	if s.ref == nil {
		return nil
	}
	return func(ctx context.Context, key, _ string, n int) error { return s.ref.RefundN(ctx, key, n) }
}

type middleware struct {
	b   backend
	cfg config
	// settle settles the cost a handler reports with SetCost or its
	// response with WithResponseCost; nil when neither WithCost nor
	// WithResponseCost is given, or the backend cannot settle.
	settle func(ctx context.Context, key, tier string, reserved, actual int) error

	checkLog  logThrottle // failed checks
	settleLog logThrottle // failed settles
}

// logThrottle lets one message a second through.
type logThrottle struct {
	last       atomic.Int64 // UnixNano of the last message let through
	suppressed atomic.Int64 // messages held back since then
}

// allow reports whether a message may be logged now and, if so, how many
// were held back since the last one.
func (t *logThrottle) allow() (suppressed int64, ok bool) {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(time.Second) || !t.last.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}

var (
	bodyBadKey      = []byte("missing or invalid client key\n")
	bodyUnavailable = []byte("rate limiter unavailable\n")
	bodyNoPlan      = []byte("no rate limit plan for this client\n")
	bodyExceeded    = []byte("rate limit exceeded\n")
	bodyTooCostly   = []byte("request costs more than the rate limit allows\n")
	bodyEnded       = []byte("request ended before its rate limit was checked\n")
)

const textPlain = "text/plain; charset=utf-8"

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	if ctx.Err() != nil {
		// Ended before it arrived: check nothing, spend nothing.
		ended(w)
		return
	}
	key, err := m.cfg.key(r)
	if err == nil {
		err = ratelimit.ValidateKey(key)
	}
	if err != nil {
		m.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "httplimit: no client key", slog.Any("err", err))
		writeBody(w, http.StatusBadRequest, textPlain, bodyBadKey)
		return
	}
	rl := &requestLimiter{b: m.b}
	if m.cfg.tier != nil {
		if rl.tier, err = m.cfg.tier(r); err != nil {
			if ctx.Err() != nil {
				ended(w)
				return
			}
			m.failed(w, r, next, fmt.Errorf("httplimit: tier of request: %w", err))
			return
		}
	}
	n := 1
	if m.cfg.cost != nil {
		n = max(m.cfg.cost(r), 1)
	}
	d, err := rl.AllowN(ctx, key, n)
	if err == nil && !d.Allowed {
		req := reject.Request{Limiter: rl.view(), Key: key, N: n, Decision: d}
		d, err = m.cfg.strategy.Handle(ctx, req)
	}
	var ex *ratelimit.ExceededError
	switch {
	case err == nil:
		ps, tier := rl.result()
		if !m.cfg.noFields {
			setRateLimitHeaders(w.Header(), ps, false, m.cfg.pkSecret)
		}
		// Only tokens spent in Redis are settled there: not those of a
		// request a strategy admitted over the limit (Shadow), nor of
		// a limiter's own fallback decision.
		if m.settle != nil && d.Allowed && d.Source != ratelimit.SourceFallback {
			m.serveSettled(w, r, next, key, tier, n)
			return
		}
		next.ServeHTTP(w, r)
	case errors.As(err, &ex):
		ps, _ := rl.result()
		m.refuse(w, r, ps, err, ex)
	case ctx.Err() != nil:
		ended(w)
	default:
		m.failed(w, r, next, err)
	}
}

// ended answers a request whose context ended before its check did (the
// client hung up, or a deadline set in front of the middleware passed):
// 503 with Retry-After: 1, never the handler. A client that has gone
// reads nothing; one still waiting learns that it was not served, where
// writing nothing would have sent it an empty 200 OK.
func ended(w http.ResponseWriter) {
	w.Header().Set(HeaderRetryAfter, "1")
	writeBody(w, http.StatusServiceUnavailable, textPlain, bodyEnded)
}

// refuse answers a request the strategy refused: with the Status
// strategy's code and body, or else 429 and a problem+json body if the
// client prefers it, or plain text.
func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, ps []policy, err error, ex *ratelimit.ExceededError) {
	h := w.Header()
	retry := max(ceilSeconds(ex.Decision.RetryAfter), 1)
	if !m.cfg.noFields {
		// Retry-After is never earlier than a t the response carries.
		retry = max(retry, setRateLimitHeaders(h, ps, true, m.cfg.pkSecret))
	}
	h.Set(HeaderRetryAfter, strconv.FormatInt(retry, 10))
	var se *reject.StatusError
	if errors.As(err, &se) {
		writeBody(w, se.Code, se.ContentType, se.Body)
		return
	}
	h.Add("Vary", "Accept")
	if prefersProblem(r.Header.Get("Accept")) {
		writeBody(w, http.StatusTooManyRequests, problemJSON, problemBody(ps, retry))
		return
	}
	writeBody(w, http.StatusTooManyRequests, textPlain, bodyExceeded)
}

// failed answers a request whose check failed with err. Only a store
// failure is subject to the failure policy; any other error (no tier for
// the client, an unknown tier, a failing WithTier function or resolver, a
// closed limiter) refuses the request without serving it.
func (m *middleware) failed(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	switch {
	case errors.Is(err, ratelimit.ErrStore):
		if m.cfg.policy == ratelimit.FailClosed {
			m.logFailure(r, err, "refused with 503 (fail closed)")
			w.Header().Set(HeaderRetryAfter, "1")
			writeBody(w, http.StatusServiceUnavailable, textPlain, bodyUnavailable)
			return
		}
		m.logFailure(r, err, "served unlimited (fail open)")
		next.ServeHTTP(w, r)
	case errors.Is(err, ratelimit.ErrClosed):
		m.logFailure(r, err, "refused with 503")
		w.Header().Set(HeaderRetryAfter, "1")
		writeBody(w, http.StatusServiceUnavailable, textPlain, bodyUnavailable)
	case errors.Is(err, ratelimit.ErrInvalidN):
		// The WithCost estimate is more than a limit's burst: no wait
		// would admit the request.
		m.logFailure(r, err, "refused with 403")
		writeBody(w, http.StatusForbidden, textPlain, bodyTooCostly)
	case errors.Is(err, tiers.ErrUnknownTier):
		m.cfg.logger.LogAttrs(r.Context(), slog.LevelDebug, "httplimit: no tier for client", slog.Any("err", err))
		writeBody(w, http.StatusForbidden, textPlain, bodyNoPlan)
	default:
		m.logFailure(r, err, "refused with 403")
		writeBody(w, http.StatusForbidden, textPlain, bodyNoPlan)
	}
}

// logFailure logs err, and what became of the request, at most once a
// second.
func (m *middleware) logFailure(r *http.Request, err error, outcome string) {
	suppressed, ok := m.checkLog.allow()
	if !ok {
		return
	}
	m.cfg.logger.LogAttrs(r.Context(), slog.LevelWarn, "httplimit: rate limit check failed",
		slog.String("request", outcome),
		slog.Bool("store", errors.Is(err, ratelimit.ErrStore)),
		slog.Any("err", err),
		slog.Int64("suppressed", suppressed))
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

// requestLimiter is the view of the backend that one request's strategy
// gets: it checks against the request's tier and remembers what each
// limit last decided, for the header fields.
type requestLimiter struct {
	b    backend
	tier string

	mu       sync.Mutex // protects last and resolved
	last     []policy
	resolved string // the tier of the last check
}

func (rl *requestLimiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return rl.AllowN(ctx, key, 1)
}

func (rl *requestLimiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	d, ps, tier, err := rl.b.check(ctx, key, rl.tier, n)
	if err != nil {
		return d, err
	}
	rl.mu.Lock()
	rl.last, rl.resolved = ps, tier
	rl.mu.Unlock()
	return d, nil
}

// result returns what each limit decided in the last check, and the tier
// it resolved.
func (rl *requestLimiter) result() ([]policy, string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.last, rl.resolved
}

// view returns rl as the strategy should see it: a ratelimit.Refunder
// only if the backend can refund.
func (rl *requestLimiter) view() ratelimit.Limiter {
	if f := rl.b.refunder(); f != nil {
		return refundingLimiter{rl, f}
	}
	return rl
}

type refundingLimiter struct {
	*requestLimiter
	refund func(ctx context.Context, key, tier string, n int) error
}

var (
	_ ratelimit.Limiter  = (*requestLimiter)(nil)
	_ ratelimit.Refunder = refundingLimiter{}
)

func (r refundingLimiter) RefundN(ctx context.Context, key string, n int) error {
	return r.refund(ctx, key, r.tier, n)
}
