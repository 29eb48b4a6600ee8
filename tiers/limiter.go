package tiers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// Limiter enforces a [Config]: it resolves each client key to a tier and
// admits a request only if every limit of the tier admits it. A denied
// request consumes from none of them: the limits that admitted it before
// another denied get their tokens back through [ratelimit.Refunder].
//
// Limits live in different Redis keys (a client limit and a tier-wide
// limit hash to different Cluster slots), so a check is not one atomic
// step: it takes from each limit in turn and gives back on denial.
// Between the take and the refund, a concurrent request may see the
// earlier limit lower than it will end up; it can be denied, never wrongly
// admitted.
//
// # Reloading
//
// [Limiter.Reload] validates a new config, builds what it needs and swaps
// it in atomically. Each check runs wholly under the config that was in
// force when it started. Limiters the new config no longer uses are
// closed (if they have a Close(context.Context) error method) once the
// checks still running on the old config finish, or after the grace
// period. Redis keys depend on tier and limit names only, so a changed
// rate applies to the usage already counted in the current window.
//
// A Limiter is safe for concurrent use. Create it with [New]; the zero
// value is not usable. It implements [ratelimit.Limiter] and
// [ratelimit.Refunder].
type Limiter struct {
	factory Factory
	cfg     config

	cur atomic.Pointer[snapshot] // nil once closed

	refundFailures atomic.Int64

	mu       sync.Mutex    // serializes Reload and Close; protects lastDone
	lastDone chan struct{} // closed when the latest retirement has finished

	forceCtx context.Context    // cancelled when Close stops waiting
	force    context.CancelFunc // cancels forceCtx
	closing  atomic.Bool
	closed   chan struct{} // closed when Close has finished
	closeErr error         // written before closed is closed
}

var (
	_ ratelimit.Limiter  = (*Limiter)(nil)
	_ ratelimit.Refunder = (*Limiter)(nil)
)

// A Result is the outcome of one check against every limit of a tier. It
// is a plain value owned by the caller; the zero value is a denial against
// no tier.
type Result struct {
	// Tier is the name of the tier the client was checked against.
	Tier string

	// Decision combines the limits. Allowed is true only if every limit
	// admitted. For a denial, it is the denying limit's decision; for an
	// admission, that of the limit with the fewest tokens remaining. In
	// both cases ResetAfter is the longest of the checked limits.
	Decision ratelimit.Decision

	// Limits holds one entry per limit of the tier, in check order. After
	// a denial, the limits after the denying one are not checked.
	Limits []LimitResult
}

// LimitResult is the part of a [Result] that concerns one limit.
type LimitResult struct {
	// Name is the limit's name.
	Name string
	// Scope is the limit's scope.
	Scope Scope
	// Limit is the limit's rate, period and burst.
	Limit ratelimit.Limit
	// Algorithm is the algorithm that runs the limit: the one its limiter
	// reports with an Algorithm() algorithms.Algorithm method (as
	// [algorithms.Limiter] does), or else, for a limit that does not
	// lease, the limit's own Algorithm, which the Factory was asked to run
	// (a Factory that wraps its limiters keeps it). Nil when unknown: a
	// leasing limit whose limiter does not say (a lease.Limiter always
	// runs the token bucket), or no Algorithm and no report.
	Algorithm algorithms.Algorithm
	// Checked reports whether the limit was asked. Limits after a denying
	// one are not.
	Checked bool
	// Refunded reports whether the tokens this limit granted were given
	// back because a later limit denied the request. Decision.Remaining
	// then counts them as given back.
	Refunded bool
	// Decision is the limit's decision, when Checked.
	Decision ratelimit.Decision
}

// New returns a Limiter that enforces cfg with limiters made by f. It
// fails if cfg is invalid (the error matches [ErrInvalidConfig]), if f
// fails, or if a tier of several limits gets a limiter that cannot
// refund ([ErrNotRefundable]).
func New(f Factory, cfg Config, opts ...Option) (*Limiter, error) {
	if f == nil {
		return nil, errors.New("tiers: nil Factory")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{factory: f, cfg: newConfig(opts), closed: make(chan struct{})}
	l.forceCtx, l.force = context.WithCancel(context.Background())
	s, created, err := l.build(cfg, nil)
	if err != nil {
		l.closeAll(created)
		l.force()
		return nil, err
	}
	l.cur.Store(s)
	return l, nil
}

// Allow is shorthand for AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN is Check(ctx, key, "", n) reduced to its combined decision.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	r, err := l.Check(ctx, key, "", n)
	return r.Decision, err
}

// Check checks n tokens of key against every limit of its tier, and
// spends them from every limit if all admit. tier names the tier
// explicitly, for example one derived from an HTTP request; "" resolves
// it from key. An override for key applies either way.
//
// Tiers resolve in this order: the config's overrides, tier, the config's
// Clients map, the Resolver, the default tier. A name that the config
// does not have fails with [ErrUnknownTier].
//
// A denial is a Result whose Decision.Allowed is false, with a nil error.
// Errors are those of [ratelimit.Limiter.AllowN], resolution errors and
// [ratelimit.ErrClosed]; after an error nothing stays spent (refunds
// permitting).
func (l *Limiter) Check(ctx context.Context, key, tier string, n int) (Result, error) {
	if err := ratelimit.ValidateKey(key); err != nil {
		return Result{}, err
	}
	s, err := l.acquire()
	if err != nil {
		return Result{}, err
	}
	defer s.release()
	t, err := s.resolve(ctx, key, tier, l.cfg.resolver)
	if err != nil {
		return Result{}, err
	}
	res := Result{Tier: t.name, Limits: make([]LimitResult, len(t.limits))}
	for i, b := range t.limits {
		res.Limits[i] = LimitResult{Name: b.Name, Scope: b.Scope, Limit: b.Limit.Budget, Algorithm: b.alg}
		if err := b.Limit.Budget.ValidateN(n); err != nil {
			return res, fmt.Errorf("tiers: limit %q of tier %q: %w", b.Name, t.name, err)
		}
	}
	for i, b := range t.limits {
		d, err := b.lim.AllowN(ctx, t.keyFor(b, key), n)
		if err != nil {
			l.refundBefore(ctx, t, i, key, n, &res)
			return res, err
		}
		res.Limits[i].Checked = true
		res.Limits[i].Decision = d
		if !d.Allowed {
			l.refundBefore(ctx, t, i, key, n, &res)
			res.Decision = combine(res.Limits, i)
			return res, nil
		}
	}
	res.Decision = combine(res.Limits, -1)
	return res, nil
}

// RefundN gives back n tokens to every limit of key's tier, undoing an
// admitted AllowN whose request was not carried out (for example because
// its caller gave up waiting). It fails with [ErrNotRefundable] if a limit
// of the tier cannot refund; the others are refunded anyway.
func (l *Limiter) RefundN(ctx context.Context, key string, n int) error {
	return l.Refund(ctx, key, "", n)
}

// Refund is RefundN for the tier that Check(ctx, key, tier, n) used.
func (l *Limiter) Refund(ctx context.Context, key, tier string, n int) error {
	if err := ratelimit.ValidateKey(key); err != nil {
		return err
	}
	s, err := l.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	t, err := s.resolve(ctx, key, tier, l.cfg.resolver)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range t.limits {
		if b.ref == nil {
			errs = append(errs, fmt.Errorf("%w: limit %q of tier %q", ErrNotRefundable, b.Name, t.name))
			continue
		}
		if err := b.ref.RefundN(ctx, t.keyFor(b, key), n); err != nil {
			errs = append(errs, fmt.Errorf("tiers: refund limit %q of tier %q: %w", b.Name, t.name, err))
		}
	}
	return errors.Join(errs...)
}

// Resolve returns the name of key's tier, resolved as [Limiter.Check]
// does with an empty tier.
func (l *Limiter) Resolve(ctx context.Context, key string) (string, error) {
	if err := ratelimit.ValidateKey(key); err != nil {
		return "", err
	}
	s, err := l.acquire()
	if err != nil {
		return "", err
	}
	defer s.release()
	t, err := s.resolve(ctx, key, "", l.cfg.resolver)
	if err != nil {
		return "", err
	}
	return t.name, nil
}

// Config returns a copy of the config in force, or the zero Config after
// Close.
func (l *Limiter) Config() Config {
	s, err := l.acquire()
	if err != nil {
		return Config{}
	}
	defer s.release()
	return s.cfg.clone()
}

// RefundFailures returns how many refunds after a denial have failed since
// New. Each failure leaves a limit short of the tokens the denied request
// took, until they refill; each is also logged.
func (l *Limiter) RefundFailures() int64 { return l.refundFailures.Load() }

// acquire returns the snapshot in force, counted as in use until release.
func (l *Limiter) acquire() (*snapshot, error) {
	for {
		s := l.cur.Load()
		if s == nil {
			return nil, ratelimit.ErrClosed
		}
		s.refs.Add(1)
		if l.cur.Load() == s {
			return s, nil
		}
		// Swapped out meanwhile: its retirement may not have counted us.
		s.release()
	}
}

// refundBefore refunds the limits before index upto, after a denial or error
// at upto, even if ctx is done.
func (l *Limiter) refundBefore(ctx context.Context, t *tier, upto int, key string, n int, res *Result) {
	if upto == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	for j := upto - 1; j >= 0; j-- {
		b := t.limits[j]
		if err := b.ref.RefundN(ctx, t.keyFor(b, key), n); err != nil {
			l.refundFailures.Add(1)
			l.cfg.logger.Warn("tiers: refund after denial failed; the limit stays charged until it refills",
				"tier", t.name, "limit", b.Name, "n", n, "err", err)
			continue
		}
		lr := &res.Limits[j]
		lr.Refunded = true
		lr.Decision.Remaining = min(lr.Decision.Remaining+n, lr.Limit.Burst)
	}
}

// combine builds a Result's Decision from its limits; denied is the index
// of the denying limit, or -1.
func combine(ls []LimitResult, denied int) ratelimit.Decision {
	pick := denied
	var reset time.Duration
	for i := range ls {
		if !ls[i].Checked {
			continue
		}
		d := ls[i].Decision
		reset = max(reset, d.ResetAfter)
		if denied < 0 && (pick < 0 || d.Remaining < ls[pick].Decision.Remaining) {
			pick = i
		}
	}
	d := ls[pick].Decision
	d.ResetAfter = reset
	return d
}
