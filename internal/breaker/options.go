package breaker

import (
	"log/slog"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Defaults of the options.
const (
	// DefaultConsecutiveFailures is how many failures in a row open the
	// breaker.
	DefaultConsecutiveFailures = 5
	// DefaultFailureRatio, DefaultWindow and DefaultMinCalls open the
	// breaker when half or more of the last 20 calls failed, counting once
	// 10 calls have been made.
	DefaultFailureRatio = 0.5
	DefaultWindow       = 20
	DefaultMinCalls     = 10
	// DefaultCoolDown is how long the breaker stays open after it trips.
	DefaultCoolDown = time.Second
	// DefaultMaxCoolDown caps the cool-down, which doubles on every failed
	// probe. It bounds how long after Redis recovers callers keep being
	// refused: at most DefaultMaxCoolDown × (1 + DefaultJitter).
	DefaultMaxCoolDown = 10 * time.Second
	// DefaultJitter varies each cool-down uniformly by up to ±20%, so
	// instances that tripped together do not probe together.
	DefaultJitter = 0.2
	// DefaultProbeTimeout is how long a probe may stay out before it counts
	// as failed. It only matters if a caller never hands its ticket back.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultName names the breaker in its log records.
	DefaultName = "redis"
)

// An Option configures a [Breaker].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	consecutive  int     // 0: off
	ratio        float64 // 0: off
	window       int
	winMask      uint32 // the window's bits of the outcome register
	minCalls     int
	coolDown     time.Duration
	maxCoolDown  time.Duration
	jitter       float64
	probeTimeout time.Duration
	minSpan      time.Duration // 0: off
	clock        ratelimit.Clock
	logger       *slog.Logger
	name         string
	onChange     func(from, to State)
}

func newConfig(opts []Option) config {
	c := config{
		consecutive:  DefaultConsecutiveFailures,
		ratio:        DefaultFailureRatio,
		window:       DefaultWindow,
		minCalls:     DefaultMinCalls,
		coolDown:     DefaultCoolDown,
		maxCoolDown:  DefaultMaxCoolDown,
		jitter:       DefaultJitter,
		probeTimeout: DefaultProbeTimeout,
		clock:        ratelimit.SystemClock{},
		logger:       slog.Default(),
		name:         DefaultName,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	c.winMask = uint32(uint64(1)<<c.window - 1)
	c.maxCoolDown = max(c.maxCoolDown, c.coolDown)
	return c
}

// WithConsecutiveFailures opens the breaker after n failures in a row.
// Default: DefaultConsecutiveFailures (5). Zero or negative turns this
// trigger off; n above MaxWindow means MaxWindow.
func WithConsecutiveFailures(n int) Option {
	return optionFunc(func(c *config) { c.consecutive = min(max(n, 0), MaxWindow) })
}

// WithFailureRatio opens the breaker when at least ratio of the last
// window calls failed, counting only once minCalls calls have been made
// since the breaker last closed. Default: DefaultFailureRatio (0.5) of
// DefaultWindow (20), at least DefaultMinCalls (10). A ratio of zero or
// less turns this trigger off; above 1 means 1. window is clamped to
// [1, MaxWindow] and minCalls to [1, window].
func WithFailureRatio(ratio float64, window, minCalls int) Option {
	return optionFunc(func(c *config) {
		c.ratio = min(max(ratio, 0), 1)
		c.window = min(max(window, 1), MaxWindow)
		c.minCalls = min(max(minCalls, 1), c.window)
	})
}

// WithCoolDown sets how long the breaker stays open after it trips from
// Closed, before it sends a probe. Default: DefaultCoolDown (1 s). Zero or
// negative keeps the default.
func WithCoolDown(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.coolDown = d
		}
	})
}

// WithMaxCoolDown caps the cool-down, which doubles after every failed
// probe and returns to the WithCoolDown value when a probe succeeds.
// Default: DefaultMaxCoolDown (10 s). A value at or below the cool-down
// turns doubling off; zero or negative keeps the default.
func WithMaxCoolDown(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.maxCoolDown = d
		}
	})
}

// WithJitter varies every cool-down d uniformly within [d·(1-f), d·(1+f)).
// Default: DefaultJitter (0.2). Zero turns jitter off; values outside
// [0, 1) keep the default.
func WithJitter(f float64) Option {
	return optionFunc(func(c *config) {
		if f >= 0 && f < 1 {
			c.jitter = f
		}
	})
}

// WithProbeTimeout sets how long a probe may stay out, without being handed
// back with Done or Cancel, before the next Allow counts it as failed.
// Default: DefaultProbeTimeout (5 s). Zero or negative keeps the default.
func WithProbeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.probeTimeout = d
		}
	})
}

// WithClock sets the clock that times cool-downs and probes. Default:
// ratelimit.SystemClock. A nil clock keeps the default.
func WithClock(clk ratelimit.Clock) Option {
	return optionFunc(func(c *config) {
		if clk != nil {
			c.clock = clk
		}
	})
}

// WithLogger sets the logger of state changes: opening from Closed is
// logged at Warn, closing at Info, and the moves between Open and HalfOpen
// while Redis stays down at Debug. Default: slog.Default() at the time of
// New. A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithName names the breaker in its log records (attribute "breaker"),
// for example after the Redis address it guards. Default: DefaultName.
func WithName(name string) Option {
	return optionFunc(func(c *config) { c.name = name })
}

// WithOnStateChange sets a function called on every change of state, for
// metrics. It runs while the breaker holds its lock, after the change, in
// the order the changes happen: keep it short, and do not call Allow, Done
// or Cancel from it (State is fine). Default: none.
func WithOnStateChange(f func(from, to State)) Option {
	return optionFunc(func(c *config) { c.onChange = f })
}

// WithMinFailureSpan keeps the breaker closed until the failures that
// cross a threshold span at least d, from the first of them to the last:
// a stall that fails many calls at one moment (a paused server, a busy
// machine) does not open it; failures that persist for d do. Default: 0,
// off. Zero or negative keeps it off.
func WithMinFailureSpan(d time.Duration) Option {
	return optionFunc(func(c *config) { c.minSpan = max(d, 0) })
}
