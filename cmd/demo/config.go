package main

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// defaultConfig is the demo's plans, used when -config is not given, so
// that the demo runs from any directory.
//
//go:embed tiers.yaml
var defaultConfig []byte

// loadConfig reads the tiers config at path, or the embedded one, and
// returns it with a name for the header.
func loadConfig(path string) (tiers.Config, string, error) {
	if path == "" {
		cfg, err := tiers.Parse("cmd/demo/tiers.yaml", defaultConfig)
		return cfg, "cmd/demo/tiers.yaml (embedded)", err
	}
	cfg, err := tiers.LoadFile(path)
	return cfg, path, err
}

// withoutLease returns a deep copy of cfg in which no limit asks for
// leasing, for tiers.Direct (which refuses such limits).
func withoutLease(cfg tiers.Config) tiers.Config {
	out := cfg
	out.Tiers = make([]tiers.Tier, len(cfg.Tiers))
	for i, t := range cfg.Tiers {
		t.Limits = clearLease(t.Limits)
		out.Tiers[i] = t
	}
	out.Overrides = make([]tiers.Override, len(cfg.Overrides))
	for i, o := range cfg.Overrides {
		o.Limits = clearLease(o.Limits)
		out.Overrides[i] = o
	}
	return out
}

func clearLease(ls []tiers.Limit) []tiers.Limit {
	out := slices.Clone(ls)
	for i := range out {
		out[i].Lease = false
	}
	return out
}

// anyLease reports whether some limit of cfg asks for leasing.
func anyLease(cfg tiers.Config) bool {
	for _, t := range cfg.Tiers {
		for _, l := range t.Limits {
			if l.Lease {
				return true
			}
		}
	}
	for _, o := range cfg.Overrides {
		for _, l := range o.Limits {
			if l.Lease {
				return true
			}
		}
	}
	return false
}

// findTier returns the tier named name, or nil.
func findTier(cfg tiers.Config, name string) *tiers.Tier {
	for i := range cfg.Tiers {
		if cfg.Tiers[i].Name == name {
			return &cfg.Tiers[i]
		}
	}
	return nil
}

// resolve returns the tier of key and the limits that apply to it, as a
// tiers.Limiter without a Resolver resolves them: an override, else the
// tier asked for, else the Clients map, else the default tier. Limits
// come in check order, per-client before tier-wide. The tier is "" when
// none applies.
func resolve(cfg tiers.Config, key, ask string) (string, []tiers.Limit) {
	var ov *tiers.Override
	for i := range cfg.Overrides {
		if cfg.Overrides[i].Key == key {
			ov = &cfg.Overrides[i]
		}
	}
	name := ask
	if ov != nil {
		name = ov.Tier // an override decides, whatever tier is asked for
	}
	if name == "" {
		if n, ok := cfg.Clients[key]; ok {
			name = n
		} else if name == "" {
			name = cfg.DefaultTier
		}
	}
	t := findTier(cfg, name)
	if t == nil {
		return "", nil
	}
	var out []tiers.Limit
	for _, scope := range []tiers.Scope{tiers.PerClient, tiers.PerTier} {
		for _, l := range t.Limits {
			if l.Scope == scope {
				out = append(out, l)
			}
		}
		if scope == tiers.PerClient && ov != nil {
			out = applyOverride(out, ov.Limits)
		}
	}
	return t.Name, out
}

// applyOverride replaces the limits of base named like one of ov's, and
// appends ov's other limits.
func applyOverride(base, ov []tiers.Limit) []tiers.Limit {
	out := slices.Clone(base)
	for _, l := range ov {
		i := slices.IndexFunc(out, func(b tiers.Limit) bool { return b.Name == l.Name })
		if i < 0 {
			out = append(out, l)
			continue
		}
		if l.Algorithm == nil {
			l.Algorithm = out[i].Algorithm
		}
		out[i] = l
	}
	return out
}

// describeTier returns one line about a tier's limits, such as
// "second 5/s burst 10, all-free 100/s (whole tier)".
func describeTier(t tiers.Tier) string {
	parts := make([]string, 0, len(t.Limits))
	for _, l := range t.Limits {
		s := l.Name + " " + rateString(l.Budget)
		if l.Scope == tiers.PerTier {
			s += " (whole tier)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// rateString writes a limit as "5/s burst 10", "1000/1d" or "20/90s".
func rateString(l ratelimit.Limit) string {
	var s string
	switch {
	case l.Period == 24*time.Hour:
		s = fmt.Sprintf("%d/day", l.Rate)
	case l.Period == time.Hour:
		s = fmt.Sprintf("%d/h", l.Rate)
	case l.Period == time.Minute:
		s = fmt.Sprintf("%d/min", l.Rate)
	case l.Period == time.Second:
		s = fmt.Sprintf("%d/s", l.Rate)
	default:
		s = fmt.Sprintf("%d/%v", l.Rate, l.Period)
	}
	if l.Burst != l.Rate {
		s += fmt.Sprintf(" burst %d", l.Burst)
	}
	return s
}
