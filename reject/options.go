package reject

import "time"

// Defaults of the options.
const (
	// DefaultMaxWait bounds how long Wait and Queue hold a request.
	DefaultMaxWait = 5 * time.Second
	// DefaultQueueSize is how many requests of one key a Queue holds.
	DefaultQueueSize = 64
	// DefaultMaxQueued is how many requests a Queue holds across all keys.
	DefaultMaxQueued = 4096
)

// An Option configures [Wait] and [NewQueue]: [WithMaxWait].
type Option interface {
	QueueOption
	applyWait(*config)
}

// A QueueOption configures [NewQueue]: an [Option] or [WithQueueLimits].
type QueueOption interface{ applyQueue(*config) }

type config struct {
	maxWait   time.Duration
	queueSize int
	maxQueued int
}

// option is an Option; queueOption is a QueueOption and no Option.
type (
	option      func(*config)
	queueOption func(*config)
)

func (f option) applyWait(c *config)       { f(c) }
func (f option) applyQueue(c *config)      { f(c) }
func (f queueOption) applyQueue(c *config) { f(c) }

// newConfig returns the defaults, every one of which is set here, with
// opts applied by apply, a method expression such as Option.applyWait.
func newConfig[O any](opts []O, apply func(O, *config)) config {
	c := config{maxWait: DefaultMaxWait, queueSize: DefaultQueueSize, maxQueued: DefaultMaxQueued}
	for _, o := range opts {
		if any(o) != nil {
			apply(o, &c)
		}
	}
	return c
}

// WithMaxWait bounds how long [Wait] and [Queue] hold a request before
// refusing it. Default: DefaultMaxWait (5 s). Zero keeps the default;
// ratelimit.NoBound (or any negative value) means only the context bounds
// the wait.
func WithMaxWait(d time.Duration) Option {
	return option(func(c *config) {
		if d != 0 {
			c.maxWait = d
		}
	})
}

// WithQueueLimits sets how many requests a [Queue] holds: perKey of one
// key and total across all keys; more are refused at once. Defaults:
// DefaultQueueSize (64) and DefaultMaxQueued (4096). Zero or negative
// keeps that default.
func WithQueueLimits(perKey, total int) QueueOption {
	return queueOption(func(c *config) {
		if perKey > 0 {
			c.queueSize = perKey
		}
		if total > 0 {
			c.maxQueued = total
		}
	})
}
