package tiers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// snapshot is one config made enforceable. It is immutable once built,
// apart from its in-flight count.
type snapshot struct {
	cfg       Config
	tiers     map[string]*tier
	def       *tier            // nil: no default tier
	clients   map[string]*tier // the config's Clients map
	overrides map[string]*tier // per-key tiers built from overrides

	// limiters holds every limiter the snapshot uses, by what it enforces,
	// so that a reload can reuse those of unchanged limits.
	limiters map[specKey]ratelimit.Limiter

	refs      atomic.Int64 // checks in flight
	retired   atomic.Bool  // set once the snapshot is out of force
	drained   chan struct{}
	drainOnce sync.Once
}

// tier is a Tier with its limiters, in check order.
type tier struct {
	name   string
	limits []bound
}

// bound is one limit with the limiter that enforces it.
type bound struct {
	Limit
	lim ratelimit.Limiter
	ref ratelimit.Refunder   // nil if lim cannot refund
	alg algorithms.Algorithm // what lim runs, as LimitResult.Algorithm says; nil if unknown
}

// algorithmReporter is a limiter that says which algorithm it runs, as
// algorithms.Limiter does.
type algorithmReporter interface {
	Algorithm() algorithms.Algorithm
}

// specKey identifies a limiter by everything that shapes it. (Algorithm
// is keyed by name, and by its String if it has one, as
// algorithms.CalendarWindow does to say its period and zone: an
// Algorithm value need not be comparable.)
type specKey struct {
	tier, name string
	scope      Scope
	lim        ratelimit.Limit
	alg        string
	lease      bool
}

func (t *tier) keyFor(b bound, key string) string {
	if b.Scope == PerTier {
		return t.name
	}
	return key
}

func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 && s.retired.Load() {
		s.markDrained()
	}
}

func (s *snapshot) markDrained() { s.drainOnce.Do(func() { close(s.drained) }) }

func (s *snapshot) resolve(ctx context.Context, key, name string, r Resolver) (*tier, error) {
	if t, ok := s.overrides[key]; ok {
		return t, nil
	}
	if name == "" {
		if t, ok := s.clients[key]; ok {
			return t, nil
		}
		if r != nil {
			var err error
			if name, err = r.Resolve(ctx, key); err != nil {
				return nil, fmt.Errorf("tiers: resolve tier: %w", err)
			}
		}
	}
	if name == "" {
		if s.def == nil {
			return nil, fmt.Errorf("%w: no tier for client and no default tier", ErrUnknownTier)
		}
		return s.def, nil
	}
	t, ok := s.tiers[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTier, name)
	}
	return t, nil
}

// all returns every limiter of s.
func (s *snapshot) all() []ratelimit.Limiter {
	return slices.Collect(maps.Values(s.limiters))
}

// unusedBy returns the limiters of s that next does not reuse.
func (s *snapshot) unusedBy(next *snapshot) []ratelimit.Limiter {
	var out []ratelimit.Limiter
	for k, x := range s.limiters {
		if next.limiters[k] != x {
			out = append(out, x)
		}
	}
	return out
}

// build makes a snapshot of cfg (already validated), reusing the limiters
// of old where nothing changed. It returns the limiters it created, which
// the caller must close if it fails.
func (l *Limiter) build(cfg Config, old *snapshot) (s *snapshot, created []ratelimit.Limiter, err error) {
	cfg = cfg.clone()
	s = &snapshot{
		cfg:       cfg,
		tiers:     make(map[string]*tier, len(cfg.Tiers)),
		clients:   make(map[string]*tier, len(cfg.Clients)),
		overrides: make(map[string]*tier, len(cfg.Overrides)),
		limiters:  make(map[specKey]ratelimit.Limiter),
		drained:   make(chan struct{}),
	}
	bind := func(tierName string, lim Limit) (bound, error) {
		k := specKey{tier: tierName, name: lim.Name, scope: lim.Scope, lim: lim.Budget, lease: lim.Lease}
		if lim.Algorithm != nil {
			k.alg = lim.Algorithm.Name()
			if s, ok := lim.Algorithm.(fmt.Stringer); ok {
				k.alg += " " + s.String()
			}
		}
		x, ok := s.limiters[k]
		if !ok && old != nil {
			x, ok = old.limiters[k]
		}
		if !ok {
			ks, err := LimitKeyspace(l.cfg.base, tierName, lim.Name)
			if err != nil {
				return bound{}, err
			}
			x, err = l.factory(Spec{Tier: tierName, Limit: lim, Keyspace: ks})
			if err != nil {
				return bound{}, fmt.Errorf("tiers: make limiter for limit %q of tier %q: %w", lim.Name, tierName, err)
			}
			if x == nil {
				return bound{}, fmt.Errorf("tiers: factory returned no limiter for limit %q of tier %q", lim.Name, tierName)
			}
			created = append(created, x)
		}
		s.limiters[k] = x
		ref, _ := x.(ratelimit.Refunder)
		var alg algorithms.Algorithm
		if ar, ok := x.(algorithmReporter); ok {
			alg = ar.Algorithm()
		} else if !lim.Lease {
			alg = lim.Algorithm // what the Factory was asked to run
		}
		return bound{Limit: lim, lim: x, ref: ref, alg: alg}, nil
	}

	byName := make(map[string]Tier, len(cfg.Tiers))
	for _, ct := range cfg.Tiers {
		byName[ct.Name] = ct
		t, err := bindTier(ct.Name, checkOrder(ct.Limits), bind)
		if err != nil {
			return nil, created, err
		}
		s.tiers[ct.Name] = t
	}
	for _, o := range cfg.Overrides {
		base := byName[cfg.overrideTier(o)]
		t, err := bindTier(base.Name, overrideLimits(base.Limits, o.Limits), bind)
		if err != nil {
			return nil, created, err
		}
		s.overrides[o.Key] = t
	}
	for k, name := range cfg.Clients {
		s.clients[k] = s.tiers[name]
	}
	if cfg.DefaultTier != "" {
		s.def = s.tiers[cfg.DefaultTier]
	}
	return s, created, nil
}

// bindTier binds limits, in check order, as the tier named name. Every
// limiter but the last must be able to give back.
func bindTier(name string, limits []Limit, bind func(string, Limit) (bound, error)) (*tier, error) {
	t := &tier{name: name, limits: make([]bound, 0, len(limits))}
	for _, lim := range limits {
		b, err := bind(name, lim)
		if err != nil {
			return nil, err
		}
		t.limits = append(t.limits, b)
	}
	for _, b := range t.limits[:len(t.limits)-1] {
		if b.ref == nil {
			return nil, fmt.Errorf("%w: limit %q of tier %q (%T) does not implement ratelimit.Refunder, "+
				"so a denial by a later limit could not give back its tokens", ErrNotRefundable, b.Name, t.name, b.lim)
		}
	}
	return t, nil
}

// checkOrder returns limits in the order a check runs them: every
// PerClient limit, then every PerTier limit, each in config order.
func checkOrder(limits []Limit) []Limit {
	out := make([]Limit, 0, len(limits))
	for _, scope := range []Scope{PerClient, PerTier} {
		for _, lim := range limits {
			if lim.Scope == scope {
				out = append(out, lim)
			}
		}
	}
	return out
}

// overrideLimits returns, in check order, the limits of a client whose
// tier has the limits base and whose override gives it the limits over
// (all PerClient, as Config.Validate requires), as [Override] describes:
// the tier's per-client limits, each replaced by the override's limit of
// the same name if there is one (which inherits the replaced limit's
// Algorithm if its own is nil); then the override's limits that replace
// none; then the tier's shared limits.
func overrideLimits(base, over []Limit) []Limit {
	base = checkOrder(base)
	out := make([]Limit, 0, len(base)+len(over))
	replaced := make(map[string]bool, len(over))
	for _, b := range base {
		if b.Scope != PerClient {
			continue
		}
		i := slices.IndexFunc(over, func(o Limit) bool { return o.Name == b.Name })
		if i < 0 {
			out = append(out, b)
			continue
		}
		lim := over[i]
		if lim.Algorithm == nil {
			lim.Algorithm = b.Algorithm
		}
		out = append(out, lim)
		replaced[lim.Name] = true
	}
	for _, o := range over {
		if !replaced[o.Name] {
			out = append(out, o)
		}
	}
	for _, b := range base {
		if b.Scope == PerTier {
			out = append(out, b) // the tier's own shared budget
		}
	}
	return out
}

// clone returns a deep copy of c.
func (c Config) clone() Config {
	out := Config{DefaultTier: c.DefaultTier}
	if c.Tiers != nil {
		out.Tiers = make([]Tier, len(c.Tiers))
		for i, t := range c.Tiers {
			out.Tiers[i] = Tier{Name: t.Name, Limits: slices.Clone(t.Limits)}
		}
	}
	if c.Clients != nil {
		out.Clients = maps.Clone(c.Clients)
	}
	if c.Overrides != nil {
		out.Overrides = make([]Override, len(c.Overrides))
		for i, o := range c.Overrides {
			out.Overrides[i] = Override{Key: o.Key, Tier: o.Tier, Limits: slices.Clone(o.Limits)}
		}
	}
	return out
}
