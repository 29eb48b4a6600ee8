package tiers

import (
	"context"
	"log/slog"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// DefaultGracePeriod is how long a config replaced by Reload stays usable
// for checks still in flight before its limiters are closed, unless
// [WithGracePeriod] says otherwise.
const DefaultGracePeriod = 10 * time.Second

// Bounds that no option changes: each limiter's own per-call timeout
// (250 ms for algorithms.Limiter) ends a refund or a Close sooner.
const (
	// refundTimeout bounds the refunds that follow a denial, which run
	// even if the caller's context is done.
	refundTimeout = time.Second
	// closeTimeout bounds each Close call of a retired limiter.
	closeTimeout = 5 * time.Second
)

// A Resolver names the tier of a client key, for example by looking the
// key up in a database. It is consulted after the config's overrides and
// Clients map, and before its default tier. Implementations must be safe
// for concurrent use.
type Resolver interface {
	// Resolve returns the tier name of key, or "" if it does not know the
	// key (the default tier then applies). An error fails the check.
	Resolve(ctx context.Context, key string) (string, error)
}

// ResolverFunc adapts a function to a [Resolver].
type ResolverFunc func(ctx context.Context, key string) (string, error)

// Resolve returns f(ctx, key).
func (f ResolverFunc) Resolve(ctx context.Context, key string) (string, error) { return f(ctx, key) }

// An Option configures a [Limiter].
type Option interface{ apply(*config) }

type config struct {
	base     ratelimit.Keyspace
	resolver Resolver
	grace    time.Duration
	logger   *slog.Logger
	onReload func(error)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func newConfig(opts []Option) config {
	c := config{
		grace: DefaultGracePeriod,
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

// WithKeyspace sets the base namespace of every Redis key. Each limit gets
// a namespace of its own under it (see [LimitKeyspace]). Default: the zero
// Keyspace, whose prefix is ratelimit.DefaultPrefix. The prefix must leave
// room for "<tier>:<limit>:" within ratelimit's 64-byte bound.
func WithKeyspace(ks ratelimit.Keyspace) Option {
	return optionFunc(func(c *config) { c.base = ks })
}

// WithResolver sets the resolver consulted for clients that neither an
// override nor the config's Clients map assigns. Default: none. A nil
// Resolver means none.
func WithResolver(r Resolver) Option {
	return optionFunc(func(c *config) { c.resolver = r })
}

// WithGracePeriod bounds how long Reload waits for checks still running on
// the old config before it closes the limiters the new config no longer
// uses. Default: DefaultGracePeriod (10 s). Zero keeps the default;
// ratelimit.NoBound (or any negative value) means wait until those checks
// finish, however long that is.
func WithGracePeriod(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d != 0 {
			c.grace = d
		}
	})
}

// WithLogger sets where failed refunds, failed reloads and failed closes
// are logged. Default: slog.Default() at the time of New. A nil logger
// keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithReloadHook sets a function called after every Reload, ReloadFile and
// reload by WatchFile, with nil on success or the reason the config was
// rejected. It runs on the reloading goroutine and must not call Reload.
// Default: none. A nil function means none.
func WithReloadHook(f func(err error)) Option {
	return optionFunc(func(c *config) { c.onReload = f })
}
