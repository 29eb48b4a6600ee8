package ratelimit

// WithCacheClock sets the clock that expires a Dynamic's cached limits:
// a hook for the tests of package ratelimit_test only.
var WithCacheClock = withCacheClock
