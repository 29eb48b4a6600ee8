package ratelimit

import (
	"errors"
	"fmt"
)

// Errors that callers branch on with [errors.Is]. Every error returned by
// this module wraps one of them.
var (
	// ErrRateLimitExceeded is matched by the [*ExceededError] that a
	// rejecting layer (a strategy of the reject package, the HTTP middleware)
	// returns for a denied request. A plain check reports a denial as a
	// Decision, not as this error.
	ErrRateLimitExceeded = errors.New("ratelimit: rate limit exceeded")

	// ErrInvalidKey is returned for an empty key or one longer than
	// MaxKeyLen bytes.
	ErrInvalidKey = errors.New("ratelimit: invalid key")

	// ErrInvalidLimit is matched by the error of a Limit that fails
	// [Limit.Validate], whose [*LimitError] names the field at fault.
	ErrInvalidLimit = errors.New("ratelimit: invalid limit")

	// ErrInvalidN is returned when n is not positive or exceeds the burst.
	ErrInvalidN = errors.New("ratelimit: invalid n")

	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("ratelimit: limiter closed")

	// ErrStore is matched by every failure of the shared store: Redis
	// unreachable, timed out, or replying with an error. The concrete
	// error is a [*StoreError] that names the operation and the key.
	ErrStore = errors.New("ratelimit: store failure")

	// ErrCircuitOpen is wrapped in the [*StoreError] of a check that made
	// no Redis call because the limiter's circuit breaker is open: Redis
	// failed repeatedly and is given a cool-down.
	ErrCircuitOpen = errors.New("ratelimit: circuit open, Redis calls suspended")

	// ErrBadReply is matched when Redis replies with a value of the wrong
	// shape (for example a key of another type under the limiter's
	// prefix). It also matches [ErrStore].
	ErrBadReply = errors.New("ratelimit: malformed store reply")
)

// ExceededError is returned by layers that reject a denied request. It
// matches [ErrRateLimitExceeded] and carries the decision, so a caller can
// read RetryAfter:
//
//	var ex *ratelimit.ExceededError
//	if errors.As(err, &ex) {
//		w.Header().Set("Retry-After", ...ex.Decision.RetryAfter...)
//	}
type ExceededError struct {
	// Key is the client key that was denied.
	Key string
	// Decision is the denial.
	Decision Decision
}

// Error implements error.
func (e *ExceededError) Error() string {
	return fmt.Sprintf("ratelimit: rate limit exceeded for key %q (limit %v, retry after %v)",
		e.Key, e.Decision.Limit, e.Decision.RetryAfter)
}

// Is reports whether target is [ErrRateLimitExceeded].
func (e *ExceededError) Is(target error) bool { return target == ErrRateLimitExceeded }

// StoreError is a failure of the shared store during one operation on one
// key. It matches [ErrStore] and unwraps to the underlying error (a
// go-redis error, [context.DeadlineExceeded], or [ErrBadReply]).
type StoreError struct {
	// Op names the operation, such as "gcra" or "lease refill".
	Op string
	// Key is the client key, not the Redis key.
	Key string
	// Err is the underlying error.
	Err error
}

// Error implements error.
func (e *StoreError) Error() string {
	return fmt.Sprintf("ratelimit: %s %q: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns the underlying error.
func (e *StoreError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrStore].
func (e *StoreError) Is(target error) bool { return target == ErrStore }
