package httplimit

import (
	"log/slog"
	"net/http"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/reject"
)

// DefaultFailurePolicy is what the middleware does with a request whose
// store failed, unless [WithFailurePolicy] says otherwise: it serves the
// request unlimited (and logs the failure), so that an outage of Redis is
// not an outage of the service.
const DefaultFailurePolicy = ratelimit.FailOpen

// An Option configures the middleware of [Limit] and of [New].
type Option interface {
	PlanOption
	apply(*config)
}

// A PlanOption configures the middleware of [New]: every [Option], and
// [WithTier], which only plans have.
type PlanOption interface{ applyPlan(*config) }

type config struct {
	key      KeyFunc
	tier     func(*http.Request) (string, error)
	strategy reject.Strategy
	policy   ratelimit.FailurePolicy
	logger   *slog.Logger
	noFields bool
	name     string // WithPolicyName; "" for the default
	pkSecret []byte
	cost     func(*http.Request) int
	respCost func(*http.Request, http.Header) (int, bool)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config)     { f(c) }
func (f optionFunc) applyPlan(c *config) { f(c) }

type planOptionFunc func(*config)

func (f planOptionFunc) applyPlan(c *config) { f(c) }

// defaultConfig returns the defaults. Every default is set here.
func defaultConfig() config {
	return config{
		key:      ClientIP(),
		strategy: reject.Reject(),
		policy:   DefaultFailurePolicy,
	}
}

func newConfig(opts []Option) config {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c.finish()
}

func newPlanConfig(opts []PlanOption) config {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.applyPlan(&c)
		}
	}
	return c.finish()
}

func (c config) finish() config {
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// WithKey sets how the client key is extracted. Default: ClientIP() with
// no trusted proxies (the peer address, IPv6 by its /64; X-Forwarded-For
// ignored). A nil KeyFunc keeps the default.
func WithKey(f KeyFunc) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.key = f
		}
	})
}

// WithTier sets a function that names the tier of a request (for example
// from an authenticated plan). An empty name leaves the tier to the
// tiers.Limiter's resolution from the client key. A name the config does
// not have, or an error, refuses the request with 403 Forbidden; an error
// that matches ratelimit.ErrStore (say, the function's own database is
// unreachable) follows the failure policy instead. Default: none. A nil
// function keeps the default.
func WithTier(f func(r *http.Request) (string, error)) PlanOption {
	return planOptionFunc(func(c *config) {
		if f != nil {
			c.tier = f
		}
	})
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

// WithFailurePolicy sets what happens to a request whose store failed
// (errors.Is(err, ratelimit.ErrStore)): ratelimit.FailOpen serves it
// unlimited, ratelimit.FailClosed answers 503 Service Unavailable with
// Retry-After: 1. Default: DefaultFailurePolicy (FailOpen). The zero value
// keeps the default.
//
// ratelimit.FailLocal limits in process, which only a limiter can do:
// give it to the limiter (algorithms.WithFailurePolicy,
// lease.WithFailurePolicy), whose fallback decisions the middleware then
// applies like any other. Given here, it is treated as FailClosed for the
// store failures that still reach the middleware, since it asks for
// requests to stay limited. Other values keep the default.
func WithFailurePolicy(p ratelimit.FailurePolicy) Option {
	return optionFunc(func(c *config) {
		switch p {
		case ratelimit.FailOpen, ratelimit.FailClosed:
			c.policy = p
		case ratelimit.FailLocal:
			c.policy = ratelimit.FailClosed
		}
	})
}

// WithLogger sets where failed checks are logged. Default: slog.Default()
// at the time of New or Limit. A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithoutHeaders leaves the RateLimit-Policy and RateLimit fields out of
// every response. Retry-After is still sent with each refusal. Default:
// the fields are sent.
func WithoutHeaders() Option {
	return optionFunc(func(c *config) { c.noFields = true })
}

// WithPolicyName names the middleware's policies in the header fields and
// in problem bodies: the one policy of [Limit] is named name, and those of
// [New] "<name>.<tier>.<limit>". It lets two middlewares stacked on one
// handler (say one per client IP, one per API key) tell their limits
// apart: each adds its items to the RateLimit-Policy and RateLimit fields
// an outer one wrote, so the response describes both. Default:
// [DefaultPolicyName] for Limit, "<tier>.<limit>" for New. An empty name
// keeps the default.
func WithPolicyName(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.name = name
		}
	})
}

// WithPartitionKey adds the draft's pk parameter to each RateLimit item:
// the partition the limit counts in (the client key, or for a limit that
// a tier shares, the tier), as the first 12 bytes of its HMAC-SHA256 under
// secret. A client that acts for several keys can tell their budgets apart
// without the response ever carrying a key. Give every instance the same
// secret, so that a key has the same pk whichever instance answers.
// Default: no pk. A nil or empty secret keeps the default.
func WithPartitionKey(secret []byte) Option {
	return optionFunc(func(c *config) {
		if len(secret) > 0 {
			c.pkSecret = append([]byte(nil), secret...)
		}
	})
}
