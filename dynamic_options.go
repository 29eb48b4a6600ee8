package ratelimit

import "time"

// Defaults of a [Dynamic].
const (
	// DefaultCacheSize is how many keys' limits a Dynamic remembers
	// unless [WithCache] says otherwise.
	DefaultCacheSize = 10000
	// DefaultCacheTTL is how long a Dynamic uses a key's limit before
	// asking its LimitFunc again, unless [WithCache] says otherwise.
	DefaultCacheTTL = time.Minute
	// DefaultLookupTimeout bounds a call of a Dynamic's LimitFunc unless
	// [WithLookupTimeout] says otherwise.
	DefaultLookupTimeout = time.Second
)

// A DynamicOption configures a [Dynamic].
type DynamicOption interface{ applyDynamic(*dynamicConfig) }

type dynamicConfig struct {
	size    int
	ttl     time.Duration
	timeout time.Duration
	clock   Clock
}

type dynamicOptionFunc func(*dynamicConfig)

func (f dynamicOptionFunc) applyDynamic(c *dynamicConfig) { f(c) }

// newDynamicConfig returns the options over the defaults, every one of
// which is set here.
func newDynamicConfig(opts []DynamicOption) dynamicConfig {
	c := dynamicConfig{size: DefaultCacheSize, ttl: DefaultCacheTTL, timeout: DefaultLookupTimeout, clock: SystemClock{}}
	for _, o := range opts {
		if o != nil {
			o.applyDynamic(&c)
		}
	}
	return c
}

// WithCache sets the cache of a [Dynamic]: it remembers the limits of at
// most size keys (beyond that, the least recently used is forgotten and
// looked up again at its next request), each for ttl before it asks its
// LimitFunc again: ttl is the longest a plan change takes to apply
// without [Dynamic.Invalidate]. Defaults: DefaultCacheSize (10,000) and
// DefaultCacheTTL (1 minute). Zero or negative keeps that default.
func WithCache(size int, ttl time.Duration) DynamicOption {
	return dynamicOptionFunc(func(c *dynamicConfig) {
		if size > 0 {
			c.size = size
		}
		if ttl > 0 {
			c.ttl = ttl
		}
	})
}

// WithLookupTimeout bounds each call of a [Dynamic]'s LimitFunc. The call
// is shared by the requests of the key that arrive while it runs, so it
// runs on a context of its own, which one caller giving up does not
// cancel. Default: DefaultLookupTimeout (1 s). Zero or negative keeps the
// default.
func WithLookupTimeout(d time.Duration) DynamicOption {
	return dynamicOptionFunc(func(c *dynamicConfig) {
		if d > 0 {
			c.timeout = d
		}
	})
}

// withCacheClock sets the clock that expires a [Dynamic]'s cached limits,
// for tests (export_test.go). Default: SystemClock. A nil Clock keeps the
// default.
func withCacheClock(clk Clock) DynamicOption {
	return dynamicOptionFunc(func(c *dynamicConfig) {
		if clk != nil {
			c.clock = clk
		}
	})
}
