package tiers

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// issues collects ConfigErrors; pos, when set, places them in a file.
type issues struct {
	list []*ConfigError
	pos  func(field string) (file string, line, col int)
	// skip holds fields already reported (by the YAML reader), whose
	// consequences need no second report.
	skip map[string]bool
	// suppress, when set, drops other consequences of reported problems.
	suppress func(field string) bool
}

func (is *issues) add(field string, cause error, format string, args ...any) {
	for f := field; f != ""; f = parent(f) {
		if is.skip[f] {
			return
		}
	}
	if is.suppress != nil && is.suppress(field) {
		return
	}
	e := &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...), Err: cause}
	if is.pos != nil {
		e.File, e.Line, e.Column = is.pos(field)
	}
	is.list = append(is.list, e)
}

func (is *issues) err() error {
	if len(is.list) == 0 {
		return nil
	}
	sort.SliceStable(is.list, func(i, j int) bool {
		a, b := is.list[i], is.list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	errs := make([]error, len(is.list))
	for i, e := range is.list {
		errs[i] = e
	}
	return joinErrors(errs)
}

func parent(field string) string {
	i := strings.LastIndexByte(field, '.')
	if i < 0 {
		return ""
	}
	return field[:i]
}

// validate checks c. Fields are named by dotted paths that follow the
// file layout: tiers.<tier>.limits.<limit>.rate, clients.<key>,
// overrides.<key>.tier, default_tier.
func (c Config) validate(is *issues) *issues {
	if is == nil {
		is = &issues{}
	}
	if len(c.Tiers) == 0 {
		is.add("tiers", nil, "at least one tier is required")
	}
	tiers := make(map[string]*Tier, len(c.Tiers))
	for i := range c.Tiers {
		t := &c.Tiers[i]
		f := "tiers." + t.Name
		if err := validName(t.Name); err != nil {
			is.add(f, nil, "tier name: %v", err)
			continue
		}
		if _, dup := tiers[t.Name]; dup {
			is.add(f, nil, "duplicate tier %q", t.Name)
			continue
		}
		tiers[t.Name] = t
		eachLimit(is, f, fmt.Sprintf("tier %q", t.Name), t.Limits, nil)
	}
	if c.DefaultTier != "" && tiers[c.DefaultTier] == nil {
		is.add("default_tier", nil, "unknown tier %q", c.DefaultTier)
	}
	keys := make([]string, 0, len(c.Clients))
	for k := range c.Clients {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := "clients." + k
		if err := ratelimit.ValidateKey(k); err != nil {
			is.add(f, err, "client key: %v", err)
		}
		if name := c.Clients[k]; tiers[name] == nil {
			is.add(f, nil, "unknown tier %q", name)
		}
	}
	seenKeys := make(map[string]bool, len(c.Overrides))
	for _, o := range c.Overrides {
		f := "overrides." + o.Key
		if err := ratelimit.ValidateKey(o.Key); err != nil {
			is.add(f, err, "client key: %v", err)
			continue
		}
		if seenKeys[o.Key] {
			is.add(f, nil, "duplicate override for client %q", o.Key)
			continue
		}
		seenKeys[o.Key] = true
		name := c.overrideTier(o)
		t := tiers[name]
		switch {
		case name == "":
			is.add(f+".tier", nil, "override of client %q names no tier, and there is no default tier", o.Key)
		case t == nil:
			is.add(f+".tier", nil, "unknown tier %q", name)
		}
		eachLimit(is, f, fmt.Sprintf("override of client %q", o.Key), o.Limits, func(l Limit, lf string) {
			if l.Scope != PerClient {
				is.add(lf+".scope", nil, "an override applies to one client: scope must be %q", PerClient)
				return
			}
			if t == nil {
				return
			}
			for _, tl := range t.Limits {
				if tl.Name == l.Name && tl.Scope == PerTier {
					is.add(lf, nil, "limit %q of tier %q is shared by the tier and cannot be overridden", l.Name, t.Name)
				}
				if cal, isCal := tl.Algorithm.(algorithms.CalendarWindow); isCal && tl.Name == l.Name && l.Algorithm == nil {
					// It inherits the calendar (see Override).
					inherited := l
					inherited.Algorithm = cal
					validateCalendar(is, lf, cal, inherited)
				}
			}
		})
	}
	return is
}

// eachLimit reports the problems of limits, those of owner (such as
// `tier "free"`) under field f: none at all, a limit's own, duplicate
// names; and calls fn, if not nil, with each usable limit and its field.
func eachLimit(is *issues, f, owner string, limits []Limit, fn func(l Limit, lf string)) {
	if len(limits) == 0 {
		is.add(f+".limits", nil, "%s needs at least one limit", owner)
	}
	seen := make(map[string]bool, len(limits))
	for _, l := range limits {
		lf := f + ".limits." + l.Name
		if !validateLimit(is, lf, l) {
			continue
		}
		if seen[l.Name] {
			is.add(lf, nil, "duplicate limit %q in %s", l.Name, owner)
		}
		seen[l.Name] = true
		if fn != nil {
			fn(l, lf)
		}
	}
}

// overrideTier returns the tier an override applies to.
func (c Config) overrideTier(o Override) string {
	if o.Tier != "" {
		return o.Tier
	}
	if name, ok := c.Clients[o.Key]; ok {
		return name
	}
	return c.DefaultTier
}

// validateLimit reports l's problems under field f and says whether l is
// usable.
func validateLimit(is *issues, f string, l Limit) bool {
	ok := true
	fail := func(field string, cause error, format string, args ...any) {
		ok = false
		is.add(field, cause, format, args...)
	}
	if err := validName(l.Name); err != nil {
		fail(f, nil, "limit name: %v", err)
		return false
	}
	if err := l.Budget.Validate(); err != nil {
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			var le *ratelimit.LimitError
			if !errors.As(e, &le) {
				fail(f, e, "%v", e)
				continue
			}
			field := f // the refill time, which no one field makes
			if le.Field != "" {
				field += "." + le.Field // rate, period, burst: named as in the file
			}
			fail(field, le, "%s", le.Msg)
		}
	}
	if l.Scope != PerClient && l.Scope != PerTier {
		fail(f+".scope", nil, "unknown scope %v", l.Scope)
	}
	if cal, isCal := l.Algorithm.(algorithms.CalendarWindow); isCal && ok {
		validateCalendar(is, f, cal, l)
	}
	return ok
}

// validateCalendar reports the problems of l, run by cal, under field f.
func validateCalendar(is *issues, f string, cal algorithms.CalendarWindow, l Limit) {
	if err := cal.Validate(l.Budget); err != nil {
		is.add(f+".period", err, "%v", err)
	}
	if l.Lease {
		is.add(f+".lease", nil, "a calendar quota (%v) cannot lease: leasing runs the token bucket", cal)
	}
}

// validName checks a tier or limit name.
func validName(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%q is longer than %d bytes", s, MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%q may hold only ASCII letters, digits, '_' and '-'", s)
		}
	}
	return nil
}
