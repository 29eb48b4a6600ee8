package tiers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// reader turns a YAML node tree into a Config, recording where each field
// is so that Config.validate can place its errors.
type reader struct {
	file    string
	pos     map[string][2]int // field -> line, column
	is      *issues
	unknown map[string]bool // mappings with an unknown field (perhaps a misspelt one)
}

// consequence reports whether a problem with field is likely a consequence
// of one already reported: the field is absent from a mapping that has an
// unknown field, which may be the field misspelt.
func (r *reader) consequence(field string) bool {
	_, present := r.pos[field]
	return !present && r.unknown[parent(field)]
}

func (r *reader) position(field string) (string, int, int) {
	for f := field; ; f = parent(f) {
		if p, ok := r.pos[f]; ok {
			return r.file, p[0], p[1]
		}
		if f == "" {
			return r.file, 0, 0
		}
	}
}

// fail reports a problem at node n and marks field as reported.
func (r *reader) fail(n *yaml.Node, field string, cause error, format string, args ...any) {
	r.is.list = append(r.is.list, &ConfigError{
		File: r.file, Line: n.Line, Column: n.Column, Field: field,
		Msg: fmt.Sprintf(format, args...), Err: cause,
	})
	r.is.skip[field] = true
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// maxKeyLen is the longest key the reader reads: no tier or limit name,
// nor client key, can be longer.
const maxKeyLen = ratelimit.MaxKeyLen

// entries calls fn for each key of the mapping n, in file order,
// reporting duplicate keys, and keys too long to be valid, which it skips:
// the fields under a key are named after it, so a long key read with many
// fields under it would cost its length for each.
func (r *reader) entries(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node, field string)) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return // an empty section
		}
		r.fail(n, field, nil, "must be a mapping")
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.fail(k, field, nil, "keys must be scalars")
			continue
		}
		if len(k.Value) > maxKeyLen {
			r.fail(k, field, nil, "a key of %d bytes is longer than any name or client key may be (%d bytes)", len(k.Value), maxKeyLen)
			continue
		}
		f := join(field, k.Value)
		if line, dup := seen[k.Value]; dup {
			r.fail(k, f, nil, "duplicate key %q (first defined at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		r.pos[f] = [2]int{k.Line, k.Column}
		fn(k.Value, k, v, f)
	}
}

// fields is entries over a mapping with a fixed set of keys.
func (r *reader) fields(n *yaml.Node, field string, known map[string]func(v *yaml.Node, field string)) {
	r.entries(n, field, func(key string, k, v *yaml.Node, f string) {
		fn, ok := known[key]
		if !ok {
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			sort.Strings(names)
			r.fail(k, f, nil, "unknown field %q (want one of %s)", key, strings.Join(names, ", "))
			if r.unknown == nil {
				r.unknown = make(map[string]bool)
			}
			r.unknown[field] = true
			return
		}
		r.pos[f] = [2]int{v.Line, v.Column}
		fn(v, f)
	})
}

func (r *reader) config(root *yaml.Node) Config {
	var c Config
	r.fields(root, "", map[string]func(*yaml.Node, string){
		"default_tier": func(v *yaml.Node, f string) { c.DefaultTier = r.str(v, f) },
		"tiers": func(v *yaml.Node, f string) {
			r.entries(v, f, func(name string, _, v *yaml.Node, f string) {
				c.Tiers = append(c.Tiers, r.tier(name, v, f))
			})
		},
		"clients": func(v *yaml.Node, f string) {
			r.entries(v, f, func(key string, _, v *yaml.Node, f string) {
				r.pos[f] = [2]int{v.Line, v.Column}
				if c.Clients == nil {
					c.Clients = make(map[string]string)
				}
				c.Clients[key] = r.str(v, f)
			})
		},
		"overrides": func(v *yaml.Node, f string) {
			r.entries(v, f, func(key string, _, v *yaml.Node, f string) {
				o := Override{Key: key}
				r.fields(v, f, map[string]func(*yaml.Node, string){
					"tier":   func(v *yaml.Node, f string) { o.Tier = r.str(v, f) },
					"limits": func(v *yaml.Node, f string) { o.Limits = r.limits(v, f) },
				})
				c.Overrides = append(c.Overrides, o)
			})
		},
	})
	return c
}

func (r *reader) tier(name string, n *yaml.Node, field string) Tier {
	t := Tier{Name: name}
	r.fields(n, field, map[string]func(*yaml.Node, string){
		"limits": func(v *yaml.Node, f string) { t.Limits = r.limits(v, f) },
	})
	return t
}

func (r *reader) limits(n *yaml.Node, field string) []Limit {
	var out []Limit
	r.entries(n, field, func(name string, _, v *yaml.Node, f string) {
		out = append(out, r.limit(name, v, f))
	})
	return out
}

func (r *reader) limit(name string, n *yaml.Node, field string) Limit {
	l := Limit{Name: name}
	var hasRate, hasPeriod, hasBurst bool
	var (
		calendar                   algorithms.CalendarPeriod // a calendar period: day, week, month
		tzNode, burstNode, algNode *yaml.Node                // timezone, burst, algorithm
		calendarAlg                bool                      // algorithm: calendar_window
	)
	r.fields(n, field, map[string]func(*yaml.Node, string){
		"rate": func(v *yaml.Node, f string) { l.Budget.Rate, hasRate = r.int(v, f), true },
		"period": func(v *yaml.Node, f string) {
			hasPeriod = true
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				if p, err := algorithms.ParseCalendarPeriod(v.Value); err == nil {
					calendar, l.Budget.Period = p, p.Nominal()
					return
				}
			}
			l.Budget.Period = r.duration(v, f)
		},
		"burst":    func(v *yaml.Node, f string) { l.Budget.Burst, hasBurst, burstNode = r.int(v, f), true, v },
		"timezone": func(v *yaml.Node, f string) { tzNode = v },
		"scope": func(v *yaml.Node, f string) {
			switch s := r.str(v, f); s {
			case "client":
				l.Scope = PerClient
			case "tier":
				l.Scope = PerTier
			default:
				if !r.is.skip[f] {
					r.fail(v, f, nil, "unknown scope %q (want client or tier)", s)
				}
			}
		},
		"algorithm": func(v *yaml.Node, f string) {
			s := r.str(v, f)
			if r.is.skip[f] {
				return
			}
			algNode = v
			if s == (algorithms.CalendarWindow{}).Name() {
				calendarAlg = true // needs a calendar period, and its time zone
				return
			}
			a, err := algorithms.ByName(s)
			if err != nil {
				names := make([]string, 0, len(algorithms.All)+1)
				for _, a := range algorithms.All {
					names = append(names, a.Name())
				}
				names = append(names, (algorithms.CalendarWindow{}).Name())
				r.fail(v, f, nil, "unknown algorithm %q (want one of %s)", s, strings.Join(names, ", "))
				return
			}
			l.Algorithm = a
		},
		"lease": func(v *yaml.Node, f string) { l.Lease = r.bool(v, f) },
	})
	if n.Kind == yaml.MappingNode {
		if !hasRate {
			r.fail(n, field+".rate", ratelimit.ErrInvalidLimit, "missing required field rate")
		}
		if !hasPeriod {
			r.fail(n, field+".period", ratelimit.ErrInvalidLimit, "missing required field period")
		}
	}
	r.calendar(&l, field, calendar, tzNode, burstNode, algNode, calendarAlg)
	if !hasBurst {
		// Burst is Rate: any problem with it is Rate's, reported there.
		l.Budget.Burst = l.Budget.Rate
		r.is.skip[field+".burst"] = true
	}
	return l
}

// calendar makes l, whose period was p (0: a duration), a calendar quota:
// the CalendarWindow of p in the zone that tz names (UTC if nil). burst
// and alg are the nodes of the limit's burst and algorithm, or nil;
// calendarAlg says whether the algorithm was calendar_window.
func (r *reader) calendar(l *Limit, field string, p algorithms.CalendarPeriod, tz, burst, alg *yaml.Node, calendarAlg bool) {
	if p == 0 {
		if tz != nil {
			r.fail(tz, field+".timezone", nil, "a timezone applies only to a calendar period: period must be day, week or month")
		}
		if calendarAlg {
			r.fail(alg, field+".algorithm", nil, "the calendar_window algorithm needs a calendar period: period must be day, week or month")
		}
		return
	}
	cal := algorithms.CalendarWindow{Period: p}
	if tz != nil {
		name := r.str(tz, field+".timezone")
		if r.is.skip[field+".timezone"] {
			return
		}
		loc, err := loadZone(name)
		if err != nil {
			r.fail(tz, field+".timezone", nil, "%v", err)
			return
		}
		cal.Location = loc
	}
	if l.Algorithm != nil {
		r.fail(alg, field+".algorithm", nil, "period %s is a calendar quota, run by the calendar_window algorithm, not %s", p, l.Algorithm.Name())
		return
	}
	if burst != nil && !r.is.skip[field+".burst"] && l.Budget.Burst != l.Budget.Rate {
		r.fail(burst, field+".burst", nil, "a calendar quota admits rate requests per %s: leave burst out, or make it equal to rate (%d)", p, l.Budget.Rate)
		return
	}
	l.Algorithm = cal
}

// loadZone loads the IANA time zone name. Empty and "Local" are refused:
// the first is a mistake, the second would differ from machine to machine.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q: want an IANA name such as Europe/Paris, America/New_York or UTC", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Paris, America/New_York or UTC)", name)
	}
	return loc, nil
}

func (r *reader) str(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.fail(n, field, nil, "must be a string")
		return ""
	}
	return n.Value
}

func (r *reader) int(n *yaml.Node, field string) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		r.fail(n, field, nil, "must be a whole number, got %q", n.Value)
		return 0
	}
	if leadingZero(n.Value) {
		r.fail(n, field, nil, "must be a whole number without a leading zero, got %q "+
			"(YAML 1.1 reads it as octal, YAML 1.2 as decimal; write 0o for octal)", n.Value)
		return 0
	}
	var v int64
	if err := n.Decode(&v); err != nil || int64(int(v)) != v {
		r.fail(n, field, nil, "must be a whole number, got %q", n.Value)
		return 0
	}
	return int(v)
}

// leadingZero reports whether s, an integer as YAML writes it, is a
// decimal with a leading zero, such as 010: yaml.v3 reads it as YAML
// 1.1's octal (8), where YAML 1.2 reads 10, so a limit would not be what
// its file seems to say.
func leadingZero(s string) bool {
	s = strings.TrimLeft(strings.ReplaceAll(s, "_", ""), "+-")
	return len(s) > 1 && s[0] == '0' && '0' <= s[1] && s[1] <= '9'
}

func (r *reader) bool(n *yaml.Node, field string) bool {
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		r.fail(n, field, nil, "must be true or false, got %q", n.Value)
		return false
	}
	return v
}

func (r *reader) duration(n *yaml.Node, field string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		r.fail(n, field, nil, "must be a duration with a unit, such as 1s, 1m, 24h or 1d, or a calendar period: day, week or month; got %q", n.Value)
		return 0
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		r.fail(n, field, nil, "must be a duration with a unit, such as 1s, 1m, 24h or 1d, or a calendar period: day, week or month; got %q", n.Value)
		return 0
	}
	return d
}

// maxDays bounds "<n>d" well inside time.Duration's range.
const maxDays = 100000

// parseDuration is time.ParseDuration plus whole days: "1d", "7d".
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < -maxDays || n > maxDays {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
