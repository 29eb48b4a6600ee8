package ratelimit

import "time"

// Source says where a [Decision] was made.
type Source uint8

const (
	// SourceRedis means the decision was made by a script in Redis.
	SourceRedis Source = iota
	// SourceLocal means the decision was made in process, from tokens
	// leased earlier or from a denial remembered until its retry time.
	SourceLocal
	// SourceFallback means Redis could not be reached and the limiter's
	// failure policy decided.
	SourceFallback
)

// String returns "redis", "local" or "fallback".
func (s Source) String() string {
	switch s {
	case SourceRedis:
		return "redis"
	case SourceLocal:
		return "local"
	case SourceFallback:
		return "fallback"
	}
	return "unknown"
}

// A Decision is the outcome of one check of n tokens against a [Limit].
//
// The zero value is a denial with nothing known about the limit; checks
// always fill every field.
type Decision struct {
	// Allowed reports whether the request was admitted. A denied request
	// consumes nothing.
	Allowed bool

	// Limit is the limit the request was checked against.
	Limit Limit

	// Remaining is how many tokens the key had left after this decision, as
	// far as the deciding layer knows: for a leasing limiter it counts the
	// tokens leased to this instance and the tokens still in Redis at the
	// last refill.
	Remaining int

	// RetryAfter is, for a denied request, how long to wait before the same
	// request can be admitted if nobody else spends tokens meanwhile. It is
	// zero for an allowed request.
	RetryAfter time.Duration

	// ResetAfter is how long until the key is back to its full burst if no
	// more requests arrive. For the fixed window that is the end of the
	// current window; for the sliding window, while the current window has
	// a count, the end of the next one.
	ResetAfter time.Duration

	// Source says where the decision was made.
	Source Source
}
