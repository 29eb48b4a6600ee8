// Package reject decides what happens to a request that its limiter
// denied: a [Strategy].
//
// The built-in strategies:
//
//   - [Reject] refuses at once with an [*ratelimit.ExceededError];
//   - [Status] refuses with a [*StatusError] that tells an HTTP layer which
//     status code (429 by default) and body to send;
//   - [Wait] blocks until the limiter admits the request, bounded by a
//     maximum wait and the context;
//   - [Queue] holds requests in a bounded queue per key and admits them in
//     arrival order as tokens become available;
//   - [Shadow] admits the request but counts it (and optionally calls
//     back), to try a limit out before enforcing it;
//   - [Custom] is a function of your own.
//
// [Enforce] checks a request and hands a denial to a strategy in one
// call.
//
// A strategy returns a nil error to admit the request and an error that
// matches [ratelimit.ErrRateLimitExceeded] (and carries the decision in an
// [*ratelimit.ExceededError]) to refuse it. Any other error is a failure,
// such as ctx ending or the limiter's store failing.
//
// The package imports only the root ratelimit package: strategies work
// with any [ratelimit.Limiter], such as a tiers.Limiter.
package reject

import (
	"context"
	"fmt"
	"net/http"

	"github.com/distributedratelimiter/ratelimit"
)

// A Request is a request that its limiter has just denied. It is a plain
// value; strategies that retry need Limiter to be set.
type Request struct {
	// Limiter is the limiter that denied the request. Strategies that
	// retry call its AllowN; if it is a [ratelimit.Refunder] they give back
	// tokens they took for a caller that has gone.
	Limiter ratelimit.Limiter
	// Key is the client key.
	Key string
	// N is the number of tokens the request needs.
	N int
	// Decision is the denial.
	Decision ratelimit.Decision
}

// A Strategy is invoked when a request is over its limit, and decides
// whether it goes ahead.
//
// Handle returns the decision the request finally got and a nil error to
// admit it; an error matching [ratelimit.ErrRateLimitExceeded] to refuse
// it; or another error when it could not decide (ctx done, store
// failure). A strategy that admits after retrying has spent the request's
// tokens; one that admits without (Shadow) has spent nothing.
//
// Implementations must be safe for concurrent use.
type Strategy interface {
	Handle(ctx context.Context, r Request) (ratelimit.Decision, error)
}

// Custom is a Strategy written as a function.
type Custom func(ctx context.Context, r Request) (ratelimit.Decision, error)

// Handle returns f(ctx, r).
func (f Custom) Handle(ctx context.Context, r Request) (ratelimit.Decision, error) { return f(ctx, r) }

// Enforce checks n tokens of key against l and, if l denies them, hands
// the denial to s: it returns l's decision and a nil error for a request
// that l admits at once, and otherwise what s returns. An error of the
// check itself (an invalid key or n, a closed limiter, a store failure,
// ctx done) is returned as it is, without calling s.
//
// With [Reject] it turns a denial into an [*ratelimit.ExceededError]; with
// [Wait] it blocks until l admits the request.
func Enforce(ctx context.Context, l ratelimit.Limiter, key string, n int, s Strategy) (ratelimit.Decision, error) {
	d, err := l.AllowN(ctx, key, n)
	if err != nil || d.Allowed {
		return d, err
	}
	return s.Handle(ctx, Request{Limiter: l, Key: key, N: n, Decision: d})
}

// Reject returns the Strategy that refuses every denied request at once
// with an [*ratelimit.ExceededError], which matches
// [ratelimit.ErrRateLimitExceeded] and carries the decision (and so its
// RetryAfter).
func Reject() Strategy { return rejectStrategy{} }

type rejectStrategy struct{}

func (rejectStrategy) Handle(_ context.Context, r Request) (ratelimit.Decision, error) {
	return r.Decision, exceeded(r.Key, r.Decision)
}

func exceeded(key string, d ratelimit.Decision) *ratelimit.ExceededError {
	return &ratelimit.ExceededError{Key: key, Decision: d}
}

// StatusError is the refusal of the [Status] strategy: what an HTTP layer
// should answer. It unwraps to its [*ratelimit.ExceededError], so it
// matches [ratelimit.ErrRateLimitExceeded]. Strategies always set
// Exceeded; a zero StatusError matches nothing.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// ContentType is the Content-Type of Body.
	ContentType string
	// Body is the response body. It is shared: do not modify it.
	Body []byte
	// Exceeded is the refusal, with the decision.
	Exceeded *ratelimit.ExceededError
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%v (HTTP status %d)", e.Exceeded, e.Code)
}

// Unwrap returns e.Exceeded.
func (e *StatusError) Unwrap() error { return e.Exceeded }

// Status returns the Strategy that refuses every denied request with a
// [*StatusError], for HTTP, that carries code, contentType and body. Zero
// values keep the defaults: code 429 Too Many Requests, contentType
// "text/plain; charset=utf-8", body "rate limit exceeded\n" (an empty,
// non-nil body sends none). Status panics if code is neither zero nor a
// client or server error (400 to 599): net/http would panic on a code
// outside 100 to 999 at the first refusal, and any other code would tell
// a refused client that it was served or sent elsewhere.
func Status(code int, contentType string, body []byte) Strategy {
	if code != 0 && (code < 400 || code > 599) {
		panic(fmt.Sprintf("reject: Status with code %d, which is not a client or server error (400-599)", code))
	}
	s := statusStrategy{code: code, contentType: contentType, body: body}
	if s.code == 0 {
		s.code = http.StatusTooManyRequests
	}
	if s.contentType == "" {
		s.contentType = "text/plain; charset=utf-8"
	}
	if s.body == nil {
		s.body = []byte("rate limit exceeded\n")
	}
	return s
}

type statusStrategy struct {
	code        int
	contentType string
	body        []byte
}

func (s statusStrategy) Handle(_ context.Context, r Request) (ratelimit.Decision, error) {
	return r.Decision, &StatusError{Code: s.code, ContentType: s.contentType, Body: s.body, Exceeded: exceeded(r.Key, r.Decision)}
}
