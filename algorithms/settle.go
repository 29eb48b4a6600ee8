package algorithms

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// A Charger is an [Algorithm] that can spend tokens of a key whatever the
// key has left, putting it into debt that later requests pay off: the cost
// of an admitted request beyond its estimate, known only once the work is
// done. Every Algorithm of this package is a Charger; [Limiter.SettleN]
// calls it.
type Charger interface {
	// Charge spends n tokens of lim at the Redis key rkey, however few it
	// has, with a debt of at most one burst:
	//   - token bucket: the bucket goes down by n, to -Burst at the
	//     lowest;
	//   - GCRA: the theoretical arrival time moves n emission intervals
	//     later, to 2 × Burst intervals ahead of now at the most (and to
	//     ratelimit.MaxRefill);
	//   - fixed, sliding and calendar window: the current window's count
	//     goes up by n, to 2 × Burst at the most. A fixed or calendar
	//     window forgets its debt when it ends; a sliding window's weighs
	//     on the next window's estimate.
	// A charge never lowers a debt that is already deeper (after a change
	// of limit). lim must already be valid and n between 1 and 2 × Burst.
	// Errors are Redis failures or replies of the wrong shape
	// ([ratelimit.ErrBadReply]).
	Charge(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error
}

var (
	_ Charger = scripted{}
	_ Charger = CalendarWindow{}

	_ ratelimit.Settler = (*Limiter)(nil)
)

// chargeStale reads the stale reply of calendar_window_charge.lua: {0, 2,
// now, 0}.
func chargeStale(r reply) (int64, bool) { return r[2], r[1] == 2 }

// Charge needs the window bounds when the key holds no window of now:
// the charge then opens the current one.
func (c CalendarWindow) Charge(ctx context.Context, rdb redis.Scripter, rkey string, lim ratelimit.Limit, n int) error {
	_, err := c.runCalendar(ctx, calendarWindowChargeScript, rdb, rkey, lim, n, chargeStale)
	return err
}

// SettleN settles the cost of a request that AllowN(ctx, key, reserved)
// admitted with an estimate, once its actual cost is known: it gives back
// reserved − actual tokens if the request cost less ([Limiter.RefundN]),
// and spends actual − reserved more if it cost more, whatever the key has
// left, possibly into debt that later requests pay off (see [Charger]).
// It implements [ratelimit.Settler].
//
// reserved may be 0: SettleN then charges actual to a key that no AllowN
// reserved for, such as usage reported after the fact. A charge is cut at
// 2 × Burst, the most any key can owe.
//
// Reserve-then-settle keeps the limit: once every admitted request has
// settled, the key has been charged exactly their actual costs, except
// what a debt deeper than one burst forgave (and, for the windows, what a
// refund or charge in a later window than the admission moved there). See
// docs/quotas.md for the bound.
//
// It fails with [ratelimit.ErrInvalidN] unless 0 <= reserved <= Burst and
// 0 <= actual <= ratelimit.MaxRate, otherwise as RefundN does, and with
// [errors.ErrUnsupported] when the Algorithm is not a [Charger]. The
// failure policy does not apply. A settle that failed with a timeout may
// or may not have run: retrying it may charge twice, and not retrying may
// let the request's extra cost go unpaid.
func (l *Limiter) SettleN(ctx context.Context, key string, reserved, actual int) error {
	if err := l.lim.ValidateSettle(reserved, actual); err != nil {
		return err
	}
	if actual < reserved {
		return l.RefundN(ctx, key, reserved-actual)
	}
	rkey, err := l.ks.ClientKey(key, l.alg.Name())
	if err != nil || actual == reserved {
		return err
	}
	ch, ok := l.alg.(Charger)
	if !ok {
		return fmt.Errorf("%w: algorithm %q cannot charge", errors.ErrUnsupported, l.alg.Name())
	}
	n := chargeTokens(l.lim, actual-reserved)
	_, err = call(l, ctx, "charge", key, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, ch.Charge(ctx, l.rdb, rkey, l.lim, n)
	})
	return err
}

// chargeTokens returns the n of a charge of extra tokens under lim: at
// most 2 × Burst, beyond which no key's debt goes.
func chargeTokens(lim ratelimit.Limit, extra int) int { return min(extra, 2*lim.Burst) }
