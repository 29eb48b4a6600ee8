package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distributedratelimiter/ratelimit"
)

// stats summarizes the requests of one tier, or of all, in one mode.
type stats struct {
	requests, admitted, denied, failed, fallback int64
	ideal, falseDenials                          int64
	causes                                       map[cause]int64
	calls                                        int64 // Redis script calls
	p50, p99                                     time.Duration
}

// vsIdeal is (admitted − ideal) / ideal in percent: above 0 admitted
// more than exact buckets would, below 0 fewer.
func (s stats) vsIdeal() float64 {
	if s.ideal == 0 {
		return 0
	}
	return 100 * float64(s.admitted-s.ideal) / float64(s.ideal)
}

// falseShare is the false denials in percent of the requests.
func (s stats) falseShare() float64 {
	if s.requests == 0 {
		return 0
	}
	return 100 * float64(s.falseDenials) / float64(s.requests)
}

// callsPer1k is the Redis calls per 1,000 decisions.
func (s stats) callsPer1k() float64 {
	if s.requests == 0 {
		return 0
	}
	return 1000 * float64(s.calls) / float64(s.requests)
}

// modeResult is the outcome of one mode's run.
type modeResult struct {
	mode    string
	elapsed time.Duration
	tiers   []stats // by tier index of the plan
	all     stats
}

// summarize computes a mode's stats from its events and the Redis calls
// counted per tier (calls has one more entry than p.tiers: calls of no
// known tier; total is every call).
func summarize(mode string, elapsed time.Duration, p plan, evs [][]event, calls []int64, total int64) modeResult {
	ideal := replay(p, evs)
	r := modeResult{mode: mode, elapsed: elapsed, tiers: make([]stats, len(p.tiers))}
	lats := make([][]time.Duration, len(p.tiers))
	var allLats []time.Duration
	for ci, es := range evs {
		t := p.clients[ci].tier
		s := &r.tiers[t]
		for _, e := range es {
			s.requests++
			switch e.res {
			case resAdmitted:
				s.admitted++
			case resDenied:
				s.denied++
			default:
				s.failed++
			}
			if e.fallback {
				s.fallback++
			}
			lats[t] = append(lats[t], e.lat)
		}
	}
	for t := range r.tiers {
		s := &r.tiers[t]
		s.ideal, s.falseDenials, s.causes = ideal[t].admitted, ideal[t].falseDenials, ideal[t].causes
		s.calls = calls[t]
		s.p50, s.p99 = percentiles(lats[t])
		allLats = append(allLats, lats[t]...)
		a := &r.all
		a.requests += s.requests
		a.admitted += s.admitted
		a.denied += s.denied
		a.failed += s.failed
		a.fallback += s.fallback
		a.ideal += s.ideal
		a.falseDenials += s.falseDenials
		for k, n := range s.causes {
			if a.causes == nil {
				a.causes = map[cause]int64{}
			}
			a.causes[cause{limit: name(p.tiers[t], k.limit), src: k.src}] += n
		}
	}
	r.all.calls = total
	r.all.p50, r.all.p99 = percentiles(allLats)
	return r
}

// name is the name of limit of tier in a list of several tiers' causes.
func name(tier, limit string) string { return tier + "." + limit }

// percentiles returns the 50th and 99th percentiles of ds (nearest rank);
// it sorts ds.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return rank(0.50), rank(0.99)
}

// printSummary writes the table of every mode, side by side per tier, the
// causes of the false denials, the comparison of the modes, and what the
// columns mean.
func printSummary(w io.Writer, p plan, rs []modeResult, instances int, embedded bool) {
	if len(rs) == 0 {
		return
	}
	var b strings.Builder
	el := rs[0].elapsed
	fmt.Fprintf(&b, "\nSummary: %d instances, %.1fs per mode, the same schedule of requests in each mode\n", instances, el.Seconds())
	fmt.Fprintf(&b, "%-6s %-6s %8s %8s %8s %8s %9s %8s %8s %8s\n",
		"tier", "mode", "requests", "admitted", "ideal", "vs-ideal", "false-den", "Redis/1k", "p50", "p99")
	row := func(name string, r modeResult, s stats) {
		fmt.Fprintf(&b, "%-6s %-6s %8d %8d %8d %+7.1f%% %9d %8.0f %8s %8s\n",
			clip(name, 6), r.mode, s.requests, s.admitted, s.ideal, s.vsIdeal(), s.falseDenials,
			s.callsPer1k(), fmtDur(s.p50), fmtDur(s.p99))
	}
	for t, name := range p.tiers {
		for _, r := range rs {
			row(name, r, r.tiers[t])
		}
	}
	if len(p.tiers) > 1 {
		for _, r := range rs {
			row("all", r, r.all)
		}
	}
	causes := ""
	for t, name := range p.tiers {
		for _, r := range rs {
			if s := r.tiers[t]; s.falseDenials > 0 {
				causes += wrap(fmt.Sprintf("  %-6s %-6s ", clip(name, 6), r.mode), describeCauses(s.causes), summaryWidth)
			}
		}
	}
	if causes != "" {
		b.WriteString("False denials by the limit that denied, and where it decided:\n" + causes)
	}
	for _, r := range rs {
		if r.elapsed.Round(100*time.Millisecond) != el.Round(100*time.Millisecond) {
			fmt.Fprintf(&b, "(%s ran %.1fs: interrupted)\n", r.mode, r.elapsed.Seconds())
		}
		if r.all.failed > 0 || r.all.fallback > 0 {
			fmt.Fprintf(&b, "%s: %d checks failed, %d were decided by the failure policy (Redis did not answer in time)\n",
				r.mode, r.all.failed, r.all.fallback)
		}
	}
	if len(rs) == 2 && rs[0].mode == modeLease && rs[1].mode == modeDirect {
		b.WriteString(compare(p, rs[0], rs[1]))
	}
	b.WriteString(legend)
	if embedded {
		b.WriteString(miniredisNote)
	}
	io.WriteString(w, b.String())
}

// Where a denial was decided, as the causes list it.
var whereNames = map[ratelimit.Source]string{
	ratelimit.SourceRedis:    "by Redis",
	ratelimit.SourceLocal:    "remembered",
	ratelimit.SourceFallback: "failure policy",
}

// describeCauses lists causes, the largest first, such as "378 all-free
// remembered, 114 second by Redis".
func describeCauses(causes map[cause]int64) string {
	keys := slices.Collect(maps.Keys(causes))
	slices.SortFunc(keys, func(a, b cause) int {
		if c := cmp.Compare(causes[b], causes[a]); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.limit, b.limit), cmp.Compare(a.src, b.src))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		where, ok := whereNames[k.src]
		if !ok {
			where = k.src.String()
		}
		parts[i] = fmt.Sprintf("%d %s %s", causes[k], k.limit, where)
	}
	return strings.Join(parts, ", ")
}

const legend = `
ideal      admissions of exact token buckets (burst + rate × t, every limit of the tier at
           once) fed the same requests in the same order; vs-ideal = (admitted − ideal) / ideal
false-den  requests denied although every limit of theirs, in exact buckets charged with the
           requests actually admitted, had a token: counted so for both modes. "by Redis": the
           Redis bucket was short (tokens in other instances' leases, or taken by a check whose
           refund was still on its way); "remembered": the instance answered from a Redis
           denial it remembers, without asking again
Redis/1k   EVAL/EVALSHA per 1,000 decisions, counted by a hook on every instance's Redis
           client: checks, lease refills, refunds and returns
`

const miniredisNote = `miniredis  runs in this process and interprets Lua in Go: direct latencies here are mostly
           its CPU time. With a real Redis (-redis) a direct check costs a round trip per limit.
`

// compare is the headline: what leasing changed against per-request checks
// of the same requests, l and d: Redis calls and latency, and what it cost
// in exactness, with the reasons.
func compare(p plan, l, d modeResult) string {
	var b strings.Builder
	la, da := l.all, d.all
	calls := fmt.Sprintf("%.1f× fewer", da.callsPer1k()/la.callsPer1k())
	switch {
	case la.callsPer1k() == 0:
		calls = "none"
	case la.callsPer1k() >= da.callsPer1k():
		calls = "no fewer"
	}
	b.WriteString("\nLeasing against per-request checks, on the same requests:\n")
	fmt.Fprintf(&b, "  Redis calls    %.0f vs %.0f per 1,000 decisions (%s)", la.callsPer1k(), da.callsPer1k(), calls)
	if len(p.tiers) > 1 {
		var per []string
		for t, name := range p.tiers {
			per = append(per, fmt.Sprintf("%s %.0f vs %.0f", name, l.tiers[t].callsPer1k(), d.tiers[t].callsPer1k()))
		}
		fmt.Fprintf(&b, ": %s", strings.Join(per, ", "))
	}
	fmt.Fprintf(&b, "\n  latency        p50 %s vs %s, p99 %s vs %s\n", fmtDur(la.p50), fmtDur(da.p50), fmtDur(la.p99), fmtDur(da.p99))
	fmt.Fprintf(&b, "  admitted       %+.1f%% vs %+.1f%% of what exact buckets admit (%d of %d, %d of %d)\n",
		la.vsIdeal(), da.vsIdeal(), la.admitted, la.ideal, da.admitted, da.ideal)
	fmt.Fprintf(&b, "  false denials  %d vs %d (%.1f%% vs %.1f%% of the requests)\n",
		la.falseDenials, da.falseDenials, la.falseShare(), da.falseShare())
	if da.falseDenials > 0 || la.falseDenials > 0 {
		b.WriteString(whyFalse)
		if math.Abs(la.vsIdeal()) < 1 {
			b.WriteString("Here the tokens behind them served later requests, as the admitted totals show: leasing\n" +
				"changed which requests were denied more than how many were admitted.\n")
		}
	}
	b.WriteString(whenLeasingPays)
	return b.String()
}

// whyFalse explains the false denials of each mode.
const whyFalse = `Per-request checks deny falsely when two requests race for a token, and while a refund is
on its way: a plan's check takes from each limit in turn and gives back when a later limit
denies. On this shared machine they also count the drift between when a check is timed and
when Redis runs it. Leasing adds two causes on busy keys: a token leased to one instance is
not there for the others until it is spent or returned, and an instance that Redis denied
remembers the denial until a lease's worth of tokens is due ("remembered" above). A quiet
key (under 320 checks/s on an instance) is decided as a per-request check would be while
its bucket is short: one token per lease, a denial only until the next token is due, and
refunds back to Redis. The free tier's keys are quiet.
`

// whenLeasingPays says where the calls are saved.
const whenLeasingPays = `Leasing pays on keys hot at an instance and on keys over their limit; a key with under ~30
checks/s on an instance leases one token per check, as many calls as checking per request.
`

// summaryWidth is the widest line of the summary.
const summaryWidth = 96

// wrap writes text after prefix, broken at spaces into lines of at most
// width columns, the later ones indented as far as the prefix.
func wrap(prefix, text string, width int) string {
	var b strings.Builder
	indent := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	line := prefix
	for i, word := range strings.Fields(text) {
		if i > 0 && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			b.WriteString(line + "\n")
			line = indent + word
			continue
		}
		if i > 0 {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// fmtDur writes d with three significant digits at most: 850ns, 1.2µs,
// 240µs, 3.5ms.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
