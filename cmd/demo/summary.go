package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// stats summarizes the requests of one tier, or of all, in one mode.
type stats struct {
	requests, admitted, denied, failed, fallback int64
	ideal, falseDenials                          int64
	calls                                        int64 // Redis script calls
	p50, p99                                     time.Duration
}

// overAdmission is (admitted − ideal) / ideal in percent, when positive.
func (s stats) overAdmission() float64 {
	if s.ideal == 0 || s.admitted <= s.ideal {
		return 0
	}
	return 100 * float64(s.admitted-s.ideal) / float64(s.ideal)
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
		s.ideal, s.falseDenials = ideal[t].admitted, ideal[t].falseDenials
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
	}
	r.all.calls = total
	r.all.p50, r.all.p99 = percentiles(allLats)
	return r
}

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
// comparison of the modes, and what the columns mean.
func printSummary(w io.Writer, p plan, rs []modeResult, instances int, embedded bool) {
	if len(rs) == 0 {
		return
	}
	var b strings.Builder
	el := rs[0].elapsed
	fmt.Fprintf(&b, "\nSummary: %d instances, %.1fs per mode, the same schedule of requests in each mode\n", instances, el.Seconds())
	fmt.Fprintf(&b, "%-6s %-6s %8s %8s %8s %8s %9s %8s %8s %8s\n",
		"tier", "mode", "requests", "admitted", "ideal", "over-adm", "false-den", "Redis/1k", "p50", "p99")
	row := func(name string, r modeResult, s stats) {
		fmt.Fprintf(&b, "%-6s %-6s %8d %8d %8d %7.1f%% %9d %8.0f %8s %8s\n",
			clip(name, 6), r.mode, s.requests, s.admitted, s.ideal, s.overAdmission(), s.falseDenials,
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
		b.WriteString(compare(rs[0].all, rs[1].all))
	}
	b.WriteString(legend)
	if embedded {
		b.WriteString(miniredisNote)
	}
	io.WriteString(w, b.String())
}

const legend = `
ideal      admissions of exact token buckets (burst + rate × t, every limit of the tier at
           once) fed the same requests in the same order; over-adm = (admitted − ideal) / ideal
false-den  denied although every limit, charged with the real admissions, had a token
           (direct has some too: requests racing for one token, refunds still in flight)
Redis/1k   EVAL/EVALSHA per 1,000 decisions, counted by a hook on every instance's Redis
           client: checks, lease refills, refunds and give-backs
`

const miniredisNote = `miniredis  runs in this process and interprets Lua in Go: direct latencies here are mostly
           its CPU time. With a real Redis (-redis) a direct check costs a round trip per limit.
`

// compare says what leasing bought, from the totals of a lease run l and
// a direct run d of the same requests.
func compare(l, d stats) string {
	calls := fmt.Sprintf("%.1f× fewer Redis calls", d.callsPer1k()/l.callsPer1k())
	if l.callsPer1k() == 0 {
		calls = "no Redis calls"
	} else if l.callsPer1k() >= d.callsPer1k() {
		calls = "no fewer Redis calls"
	}
	return fmt.Sprintf("\nLeasing: %s (%.0f vs %.0f per 1,000 decisions),\n"+
		"         p50 %s vs %s, p99 %s vs %s,\n"+
		"         %.1f%% over the ideal (direct %.1f%%), %d false denials (direct %d).\n"+
		"It pays on hot keys and on keys over their limit (a denial is remembered until a token\n"+
		"is due); a key with under ~30 checks/s on an instance leases one token per check.\n",
		calls, l.callsPer1k(), d.callsPer1k(), fmtDur(l.p50), fmtDur(d.p50), fmtDur(l.p99), fmtDur(d.p99),
		l.overAdmission(), d.overAdmission(), l.falseDenials, d.falseDenials)
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
