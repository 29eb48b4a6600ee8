package tiers

import (
	"context"
	"errors"
	"fmt"

	"github.com/distributedratelimiter/ratelimit"
)

var (
	_ ratelimit.Settler   = (*Limiter)(nil)
	_ ratelimit.Inspector = (*Limiter)(nil)
)

// SettleN is Settle(ctx, key, "", reserved, actual).
func (l *Limiter) SettleN(ctx context.Context, key string, reserved, actual int) error {
	return l.Settle(ctx, key, "", reserved, actual)
}

// Settle settles the cost of a request that Check(ctx, key, tier,
// reserved) admitted, once its actual cost is known: every limit of the
// tier, the shared ones included, gets back reserved − actual tokens or
// spends actual − reserved more, possibly into debt (see
// [ratelimit.Settler] and each limiter's SettleN). The tier resolves as in
// Check. A limit whose limiter cannot settle fails with an error matching
// [errors.ErrUnsupported]; the others are settled anyway, and the errors
// are joined.
func (l *Limiter) Settle(ctx context.Context, key, tier string, reserved, actual int) error {
	t, release, err := l.tierOf(ctx, key, tier)
	if err != nil {
		return err
	}
	defer release()
	var errs []error
	for _, b := range t.limits {
		st, ok := b.lim.(ratelimit.Settler)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: limit %q of tier %q (%T) cannot settle", errors.ErrUnsupported, b.Name, t.name, b.lim))
			continue
		}
		if err := st.SettleN(ctx, t.keyFor(b, key), reserved, actual); err != nil {
			errs = append(errs, fmt.Errorf("tiers: settle limit %q of tier %q: %w", b.Name, t.name, err))
		}
	}
	return errors.Join(errs...)
}

// Peek is Inspect(ctx, key, "") reduced to its combined decision.
func (l *Limiter) Peek(ctx context.Context, key string) (ratelimit.Decision, error) {
	r, err := l.Inspect(ctx, key, "")
	return r.Decision, err
}

// Inspect reports what key has left under every limit of its tier,
// spending nothing: each limit's [ratelimit.Inspector] Peek, combined as
// Check combines decisions (Allowed only if every limit has a token; the
// decision of the first limit that has none, or else of the one with the
// fewest remaining; the longest ResetAfter). Every LimitResult is
// Checked. The tier resolves as in Check. A limit whose limiter cannot
// peek fails the call with an error matching [errors.ErrUnsupported].
func (l *Limiter) Inspect(ctx context.Context, key, tier string) (Result, error) {
	t, release, err := l.tierOf(ctx, key, tier)
	if err != nil {
		return Result{}, err
	}
	defer release()
	res := Result{Tier: t.name, Limits: make([]LimitResult, len(t.limits))}
	denied := -1
	for i, b := range t.limits {
		res.Limits[i] = LimitResult{Name: b.Name, Scope: b.Scope, Limit: b.Limit.Budget, Algorithm: b.alg}
		in, ok := b.lim.(ratelimit.Inspector)
		if !ok {
			return res, fmt.Errorf("%w: limit %q of tier %q (%T) cannot peek", errors.ErrUnsupported, b.Name, t.name, b.lim)
		}
		d, err := in.Peek(ctx, t.keyFor(b, key))
		if err != nil {
			return res, fmt.Errorf("tiers: peek limit %q of tier %q: %w", b.Name, t.name, err)
		}
		res.Limits[i].Checked, res.Limits[i].Decision = true, d
		if !d.Allowed && denied < 0 {
			denied = i
		}
	}
	res.Decision = combine(res.Limits, denied)
	return res, nil
}

// Reset gives key its whole budget again under each per-client limit of
// its tier (an override's included). The limits the tier shares
// (PerTier) are left alone: one client's reset must not refill the budget
// of all the others. The tier resolves as in Check. A limit whose limiter
// cannot reset fails with an error matching [errors.ErrUnsupported]; the
// others are reset anyway, and the errors are joined.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	t, release, err := l.tierOf(ctx, key, "")
	if err != nil {
		return err
	}
	defer release()
	var errs []error
	for _, b := range t.limits {
		if b.Scope != PerClient {
			continue
		}
		in, ok := b.lim.(ratelimit.Inspector)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: limit %q of tier %q (%T) cannot reset", errors.ErrUnsupported, b.Name, t.name, b.lim))
			continue
		}
		if err := in.Reset(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("tiers: reset limit %q of tier %q: %w", b.Name, t.name, err))
		}
	}
	return errors.Join(errs...)
}

// tierOf validates key, acquires the snapshot in force and resolves key's
// tier in it. The caller must call release when done with the tier.
func (l *Limiter) tierOf(ctx context.Context, key, tier string) (*tier, func(), error) {
	if err := ratelimit.ValidateKey(key); err != nil {
		return nil, nil, err
	}
	s, err := l.acquire()
	if err != nil {
		return nil, nil, err
	}
	t, err := s.resolve(ctx, key, tier, l.cfg.resolver)
	if err != nil {
		s.release()
		return nil, nil, err
	}
	return t, s.release, nil
}
