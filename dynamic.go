package ratelimit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrLimitLookup is matched by the [*LimitLookupError] of a key whose
// limit could not be had: its [LimitFunc] failed or returned an invalid
// Limit, or no limiter could be built for it.
var ErrLimitLookup = errors.New("ratelimit: no limit for key")

// LimitLookupError is the failure to find a key's limit. It matches
// [ErrLimitLookup] and unwraps to the cause: the LimitFunc's error (which
// may itself match, say, [ErrStore]), an [ErrInvalidLimit], or the error
// of the limiter's constructor.
type LimitLookupError struct {
	// Key is the client key.
	Key string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *LimitLookupError) Error() string {
	return fmt.Sprintf("ratelimit: limit of key %q: %v", e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *LimitLookupError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrLimitLookup].
func (e *LimitLookupError) Is(target error) bool { return target == ErrLimitLookup }

// A LimitFunc returns the limit of a client key: from a tenant's plan in a
// database, a config service, or code. It must be safe for concurrent use.
// An error refuses the key's requests (see [Dynamic]); it is never taken
// for "unlimited".
type LimitFunc func(ctx context.Context, key string) (Limit, error)

// Dynamic is a [Limiter] whose limit is per key, looked up when the key is
// used: a tenant's plan, from code or a store. It asks its [LimitFunc]
// for the key's limit, and checks the key with a limiter built for that
// limit by its constructor, one limiter per distinct Limit (plans are
// few) shared by every key that has it:
//
//	plans := ratelimit.NewDynamic(
//		func(ctx context.Context, key string) (ratelimit.Limit, error) { return db.PlanOf(ctx, key) },
//		func(lim ratelimit.Limit) (*algorithms.Limiter, error) { return algorithms.NewLimiter(rdb, lim) },
//	)
//
// The limiters must keep a key's state in Redis under a name that does
// not depend on the limit, as algorithms.Limiter and lease.Limiter do, so
// that a key whose plan changes keeps its bucket: the scripts take the
// limit as arguments, and the same Redis state is read under the new one.
// docs/quotas.md says what each algorithm does with that state when the
// burst or rate changes.
//
// Limits are cached per key, at most [WithCache]'s size keys, least
// recently used forgotten first, each for its ttl. A plan change applies at
// the latest when the key's entry expires; [Dynamic.Invalidate] and
// [Dynamic.InvalidateAll] apply it at the next request. The requests of a
// key that miss the cache at the same time share one LimitFunc call.
// Failures are not cached: every request of a key whose LimitFunc fails
// asks it again.
//
// A key whose limit cannot be had is refused, never admitted: its checks
// fail with a [*LimitLookupError] (matching [ErrLimitLookup]), as do its
// refunds, settles, peeks and resets.
//
// RefundN, SettleN, Peek and Reset go to the key's limiter when it
// implements [Refunder], [Settler] or [Inspector], and otherwise fail with
// an error matching [errors.ErrUnsupported]. After a plan change they go
// to the limiter of the new limit: a refund is capped at the new burst.
//
// A Dynamic is safe for concurrent use. Create it with [NewDynamic]; the
// zero value is not usable. Close it to close the limiters it built.
type Dynamic[L Limiter] struct {
	limitOf LimitFunc
	build   func(Limit) (L, error)
	cfg     dynamicConfig
	group   singleflight.Group // LimitFunc calls in flight, by generation and key

	mu       sync.Mutex // protects the fields below
	gen      uint64     // bumped by every invalidation
	entries  map[string]*list.Element
	lru      list.List // of *dynamicEntry[L]; front: most recently used
	limiters map[Limit]L
	closed   bool
}

// dynamicEntry is a key's cached limit and the limiter that enforces it.
type dynamicEntry[L Limiter] struct {
	key     string
	limit   Limit
	l       L
	expires time.Time
}

var (
	_ Limiter   = (*Dynamic[Limiter])(nil)
	_ Refunder  = (*Dynamic[Limiter])(nil)
	_ Settler   = (*Dynamic[Limiter])(nil)
	_ Inspector = (*Dynamic[Limiter])(nil)
)

// NewDynamic returns a Dynamic that asks limitOf for each key's limit and
// checks it with a limiter that build returns for that limit. build is
// called once per distinct valid Limit, under the Dynamic's lock: it must
// not call the Dynamic. NewDynamic panics if limitOf or build is nil.
func NewDynamic[L Limiter](limitOf LimitFunc, build func(Limit) (L, error), opts ...DynamicOption) *Dynamic[L] {
	if limitOf == nil || build == nil {
		panic("ratelimit: NewDynamic with a nil LimitFunc or constructor")
	}
	return &Dynamic[L]{limitOf: limitOf, build: build, cfg: newDynamicConfig(opts)}
}

// Allow is shorthand for AllowN(ctx, key, 1).
func (d *Dynamic[L]) Allow(ctx context.Context, key string) (Decision, error) {
	return d.AllowN(ctx, key, 1)
}

// AllowN checks n tokens of key against its limit, with the limiter of
// that limit. It fails as [Limiter.AllowN] does, and with a
// [*LimitLookupError] when the key's limit cannot be had.
func (d *Dynamic[L]) AllowN(ctx context.Context, key string, n int) (Decision, error) {
	l, err := d.Limiter(ctx, key)
	if err != nil {
		return Decision{}, err
	}
	return l.AllowN(ctx, key, n)
}

// RefundN gives back n tokens of key through its limiter's RefundN
// ([Refunder]).
func (d *Dynamic[L]) RefundN(ctx context.Context, key string, n int) error {
	r, err := as[Refunder](d, ctx, key, "refund")
	if err != nil {
		return err
	}
	return r.RefundN(ctx, key, n)
}

// SettleN settles a request's cost through its key's limiter's SettleN
// ([Settler]).
func (d *Dynamic[L]) SettleN(ctx context.Context, key string, reserved, actual int) error {
	s, err := as[Settler](d, ctx, key, "settle")
	if err != nil {
		return err
	}
	return s.SettleN(ctx, key, reserved, actual)
}

// Peek tells what key has left under its limit, through its limiter's
// Peek ([Inspector]).
func (d *Dynamic[L]) Peek(ctx context.Context, key string) (Decision, error) {
	in, err := as[Inspector](d, ctx, key, "peek")
	if err != nil {
		return Decision{}, err
	}
	return in.Peek(ctx, key)
}

// Reset gives key its whole limit again, through its limiter's Reset
// ([Inspector]).
func (d *Dynamic[L]) Reset(ctx context.Context, key string) error {
	in, err := as[Inspector](d, ctx, key, "reset")
	if err != nil {
		return err
	}
	return in.Reset(ctx, key)
}

// as returns key's limiter as an I, or an error matching
// errors.ErrUnsupported if it is not one.
func as[I any, L Limiter](d *Dynamic[L], ctx context.Context, key, op string) (I, error) {
	var zero I
	l, err := d.Limiter(ctx, key)
	if err != nil {
		return zero, err
	}
	i, ok := any(l).(I)
	if !ok {
		return zero, fmt.Errorf("%w: the limiter of key %q (%T) cannot %s", errors.ErrUnsupported, key, l, op)
	}
	return i, nil
}

// Limiter returns the limiter that enforces key's limit now: from the
// cache, or else after asking the LimitFunc. It fails with
// [ErrInvalidKey], [ErrClosed], a [*LimitLookupError], or ctx's error when
// ctx is done before the LimitFunc answers.
func (d *Dynamic[L]) Limiter(ctx context.Context, key string) (L, error) {
	var zero L
	if err := ValidateKey(key); err != nil {
		return zero, err
	}
	now := d.cfg.clock.Now()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return zero, ErrClosed
	}
	if e, ok := d.entries[key]; ok {
		c := e.Value.(*dynamicEntry[L])
		if now.Before(c.expires) {
			d.lru.MoveToFront(e)
			l := c.l
			d.mu.Unlock()
			return l, nil
		}
	}
	gen := d.gen
	d.mu.Unlock()

	lim, err := d.lookup(ctx, key, gen)
	if err != nil {
		return zero, err
	}
	if err := lim.Validate(); err != nil {
		return zero, &LimitLookupError{Key: key, Err: err}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return zero, ErrClosed
	}
	l, ok := d.limiters[lim]
	if !ok {
		if l, err = d.build(lim); err != nil {
			return zero, &LimitLookupError{Key: key, Err: fmt.Errorf("build a limiter of %v: %w", lim, err)}
		}
		if d.limiters == nil {
			d.limiters = make(map[Limit]L)
		}
		d.limiters[lim] = l
	}
	if d.gen == gen { // else invalidated meanwhile: the answer may predate it
		d.store(key, lim, l, now.Add(d.cfg.ttl))
	}
	return l, nil
}

// lookup asks the LimitFunc for key's limit, sharing the call with the
// other requests of key in generation gen.
func (d *Dynamic[L]) lookup(ctx context.Context, key string, gen uint64) (Limit, error) {
	ch := d.group.DoChan(strconv.FormatUint(gen, 10)+":"+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.timeout)
		defer cancel()
		return d.limitOf(ctx, key)
	})
	select {
	case <-ctx.Done():
		return Limit{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return Limit{}, &LimitLookupError{Key: key, Err: r.Err}
		}
		return r.Val.(Limit), nil
	}
}

// store caches key's limit and limiter until expires, forgetting the
// least recently used key beyond the cache size. d.mu must be held.
func (d *Dynamic[L]) store(key string, lim Limit, l L, expires time.Time) {
	if e, ok := d.entries[key]; ok {
		c := e.Value.(*dynamicEntry[L])
		c.limit, c.l, c.expires = lim, l, expires
		d.lru.MoveToFront(e)
		return
	}
	if d.entries == nil {
		d.entries = make(map[string]*list.Element)
	}
	d.entries[key] = d.lru.PushFront(&dynamicEntry[L]{key: key, limit: lim, l: l, expires: expires})
	for d.lru.Len() > d.cfg.size {
		old := d.lru.Remove(d.lru.Back()).(*dynamicEntry[L])
		delete(d.entries, old.key)
	}
}

// Invalidate forgets key's limit: its next request asks the LimitFunc
// again. Call it when the key's plan changes, on every instance (the
// cache is per process). A LimitFunc call that was in flight is not
// cached.
func (d *Dynamic[L]) Invalidate(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if e, ok := d.entries[key]; ok {
		d.lru.Remove(e)
		delete(d.entries, key)
	}
}

// InvalidateAll forgets every key's limit, as Invalidate does for one.
// The limiters built so far are kept, for the limits that come back.
func (d *Dynamic[L]) InvalidateAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	clear(d.entries)
	d.lru.Init()
}

// Close closes the limiters the Dynamic built that have a
// Close(context.Context) error method (as lease.Limiter and tiers.Limiter
// do), and joins their errors. Calls made after Close fail with
// [ErrClosed]; calls in flight finish with the limiter they had. Close is
// safe to call more than once; later calls return nil.
func (d *Dynamic[L]) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	ls := d.limiters
	d.limiters = nil
	clear(d.entries)
	d.lru.Init()
	d.mu.Unlock()
	var errs []error
	for lim, l := range ls {
		if c, ok := any(l).(interface{ Close(context.Context) error }); ok {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("ratelimit: close the limiter of %v: %w", lim, err))
			}
		}
	}
	return errors.Join(errs...)
}
