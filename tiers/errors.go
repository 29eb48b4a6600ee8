package tiers

import (
	"errors"
	"fmt"
)

// Errors that callers branch on with [errors.Is].
var (
	// ErrInvalidConfig is matched by every [*ConfigError]: a Config or
	// config file that cannot be enforced.
	ErrInvalidConfig = errors.New("tiers: invalid config")

	// ErrUnknownTier is returned for a client that no rule assigns to a
	// tier when there is no default tier, or when a resolver or a caller
	// names a tier the config does not have.
	ErrUnknownTier = errors.New("tiers: unknown tier")

	// ErrNotRefundable is returned by New and Reload when a limiter made
	// by the Factory for a tier of several limits does not implement
	// [ratelimit.Refunder], so a denial by a later limit could not give
	// back what it took; and by [Limiter.RefundN] for such a tier.
	ErrNotRefundable = errors.New("tiers: limiter cannot refund")

	// ErrLeaseUnsupported is returned by a Factory asked for a leasing
	// limiter that it cannot make, such as [Direct].
	ErrLeaseUnsupported = errors.New("tiers: factory does not support leasing")
)

// A ConfigError is one problem with a config. It matches
// [ErrInvalidConfig] and unwraps to its cause, if any (for example
// [ratelimit.ErrInvalidLimit] for a rate of zero).
type ConfigError struct {
	// File is the config file's name, empty for a Config built in code.
	File string
	// Line and Column locate the problem in File, counting from 1; zero
	// when unknown.
	Line, Column int
	// Field is the dotted path of the field at fault, such as
	// "tiers.free.limits.day.period".
	Field string
	// Msg describes the problem.
	Msg string
	// Err is the underlying error, or nil.
	Err error
}

// Error returns "file:line:col: field: msg", leaving out what is unknown.
func (e *ConfigError) Error() string {
	var where string
	switch {
	case e.File != "" && e.Line > 0 && e.Column > 0:
		where = fmt.Sprintf("%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "" && e.Line > 0:
		where = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		where = e.File + ": "
	default:
		where = "tiers: "
	}
	if e.Field == "" {
		return where + e.Msg
	}
	return where + e.Field + ": " + e.Msg
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalidConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// joinErrors returns the only error itself, or errors.Join of several.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
