package ratelimit

// FailurePolicy says what a limiter decides when Redis cannot answer: it
// is down, too slow for the limiter's timeout, or its circuit breaker is
// open.
//
// The zero value means "the limiter's default", which each limiter
// documents.
type FailurePolicy uint8

const (
	// FailClosed denies: the check returns a Decision with Allowed false
	// and Source SourceFallback, and an error that wraps the store failure
	// (it matches [ErrStore]). Nothing gets through while Redis is down.
	FailClosed FailurePolicy = iota + 1
	// FailOpen admits every request, with Source SourceFallback. Nothing is
	// limited while Redis is down.
	FailOpen
	// FailLocal limits each key in process at this instance's share of the
	// limit (rate and burst divided by the expected number of instances),
	// with Source SourceFallback, and goes back to Redis when it answers
	// again. A leasing limiter first serves what it already leased.
	FailLocal
)

// String returns "closed", "open", "local", or "default" for the zero
// value.
func (p FailurePolicy) String() string {
	switch p {
	case FailClosed:
		return "closed"
	case FailOpen:
		return "open"
	case FailLocal:
		return "local"
	}
	return "default"
}

// Share returns this instance's share of l when instances instances
// enforce it together and cannot reach Redis: rate and burst divided by
// instances, each at least 1. instances below 1 counts as 1.
func (l Limit) Share(instances int) Limit {
	if instances <= 1 {
		return l
	}
	l.Rate = max(l.Rate/instances, 1)
	l.Burst = max(l.Burst/instances, 1)
	return l
}
