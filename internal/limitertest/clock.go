package limitertest

import (
	"sync/atomic"
	"time"
)

// Clock is a ratelimit.Clock that moves only when told to, for tests that
// step a limiter through explicit instants. Its zero value reads the Unix
// epoch; it is safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.Set(start)
	return c
}

// Now returns the time the clock was last set to.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
