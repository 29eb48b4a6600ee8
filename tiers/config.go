package tiers

import (
	"fmt"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// MaxNameLen is the longest tier or limit name, in bytes. Names are part of
// Redis key prefixes, which [ratelimit.NewKeyspace] caps at 64 bytes.
const MaxNameLen = 24

// Scope says who shares the budget of a [Limit].
type Scope uint8

const (
	// PerClient gives every client key a budget of its own.
	PerClient Scope = iota
	// PerTier gives the whole tier one budget, shared by all its clients
	// (for example "all free clients together at most 2,000/s").
	PerTier
)

// String returns "client" or "tier", the spelling used in config files.
func (s Scope) String() string {
	switch s {
	case PerClient:
		return "client"
	case PerTier:
		return "tier"
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// A Limit is one named limit of a [Tier]. All limits of a tier apply to
// each request at once.
//
// Limits are plain values, safe to copy. The zero value is not valid: it
// has no name and an invalid [ratelimit.Limit]. Build one with [Client] or
// [Shared].
type Limit struct {
	// Name identifies the limit within its tier, for example "second" or
	// "day". It is part of the Redis key names, so changing a limit's
	// numbers keeps its state while renaming it starts afresh. It must be
	// 1 to MaxNameLen bytes of ASCII letters, digits, '_' and '-'.
	Name string

	// Budget is the rate, period and burst the limit allows: the budget
	// that Scope says who shares.
	Budget ratelimit.Limit

	// Scope says whether each client has its own budget (PerClient, the
	// zero value) or the tier shares one (PerTier).
	Scope Scope

	// Algorithm runs the limit. Nil leaves the choice to the [Factory]
	// (for [Direct], the algorithms package default).
	Algorithm algorithms.Algorithm

	// Lease asks the Factory for a leasing limiter for this limit.
	// [Direct] refuses it; see [Factory].
	Lease bool
}

// Client returns a per-client Limit named name.
func Client(name string, lim ratelimit.Limit) Limit {
	return Limit{Name: name, Budget: lim, Scope: PerClient}
}

// Shared returns a Limit named name whose budget the whole tier shares.
func Shared(name string, lim ratelimit.Limit) Limit {
	return Limit{Name: name, Budget: lim, Scope: PerTier}
}

// WithAlgorithm returns a copy of l run by a.
func (l Limit) WithAlgorithm(a algorithms.Algorithm) Limit {
	l.Algorithm = a
	return l
}

// WithLease returns a copy of l with Lease set to on.
func (l Limit) WithLease(on bool) Limit {
	l.Lease = on
	return l
}

// A Tier is a named plan: one or more limits that all apply to each
// request. A request is admitted only if every limit admits it.
//
// The zero value is not valid: a tier needs a name and at least one limit.
type Tier struct {
	// Name identifies the tier, for example "free" or "pro". Same rules
	// as [Limit.Name].
	Name string
	// Limits are checked in this order, except that every PerClient limit
	// is checked before every PerTier limit. Put the limit most likely to
	// deny first: a denial stops the check, and only limits already
	// passed need a refund.
	Limits []Limit
}

// An Override gives one client key limits of its own, for example one
// customer with a custom rate.
//
// The client belongs to Tier. Each of Limits replaces the tier's
// per-client limit of the same name or, if the tier has none, adds one.
// A replacing limit whose Algorithm is nil inherits the replaced limit's
// algorithm. The tier's shared (PerTier) limits still apply and cannot be
// overridden. An override's limits share the Redis keys of the tier's
// limits of the same name, so changing an override keeps the client's
// current usage.
//
// Overrides are plain values, safe to copy; the zero value is invalid (it
// has no key and no limits).
type Override struct {
	// Key is the client key.
	Key string
	// Tier is the tier the client belongs to. Empty means the tier that
	// Config.Clients gives the key, or else Config.DefaultTier.
	Tier string
	// Limits are per-client limits; Scope must be PerClient.
	Limits []Limit
}

// Config is a complete set of tiers with the rules that assign clients to
// them. It is plain data: build it in code or load it with [Parse] or
// [LoadFile], then hand it to [New] or [Limiter.Reload], which validate
// it.
//
// The zero value is an empty, invalid config. A Config must not be
// modified while New or Reload runs; afterwards the Limiter keeps no
// reference to its maps and slices.
type Config struct {
	// Tiers are the plans. Names must be unique.
	Tiers []Tier

	// DefaultTier is the tier of clients that nothing else assigns. Empty
	// means such clients are refused with ErrUnknownTier.
	DefaultTier string

	// Clients maps client keys to tier names: the static resolver.
	Clients map[string]string

	// Overrides gives single clients custom limits. Keys must be unique.
	Overrides []Override
}

// Validate reports whether c can be enforced. The error joins one
// [*ConfigError] per problem; each matches [ErrInvalidConfig].
func (c Config) Validate() error {
	return c.validate(nil).err()
}
