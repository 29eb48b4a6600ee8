package lease

import (
	"testing"
	"time"
)

// Test hooks for the package's external tests.
var (
	// WithBucket replaces the Redis token bucket (see withBucket).
	WithBucket = withBucket
	// WithIdleTimeout sets the idle eviction time (see withIdleTimeout).
	WithIdleTimeout = withIdleTimeout
	// WaitRefills waits until no refill of l is in flight (see waitRefills).
	WaitRefills = waitRefills
)

// waitRefills waits until no background refill is in flight, so that
// stats read next are final.
func waitRefills(t *testing.T, l *Limiter) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		l.entries.Range(func(e *entry) bool {
			busy = busy || e.refilling.Load()
			return !busy
		})
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("refills still in flight after 5 s")
}
