package lease

// Test hooks for the package's external tests.
var (
	// WithBucket replaces the Redis token bucket (see withBucket).
	WithBucket = withBucket
	// WithIdleTimeout sets the idle eviction time (see withIdleTimeout).
	WithIdleTimeout = withIdleTimeout
)
