package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// rowsOf returns the rows of rs whose workload is one of ws, in run order,
// and of implementation im when im >= 0.
func rowsOf(rs []result, ws []workload, im impl) []result {
	var out []result
	for _, r := range rs {
		if (im < 0 || r.impl == im) && slices.Contains(ws, r.w) {
			out = append(out, r)
		}
	}
	return out
}

// throughputRows returns the rows of the throughput matrix.
func throughputRows(rs []result) []result { return rowsOf(rs, throughputWorkloads(), -1) }

// accuracyRows returns the rows of the accuracy matrix.
func accuracyRows(rs []result) []result { return rowsOf(rs, accuracyWorkloads(), -1) }

// sweepRows returns the lease's rows at 1 instance and 8 goroutines, from
// the hot key to 10,000 keys, in order of key count.
func sweepRows(rs []result) []result {
	ws := []workload{{instances: 1, goroutines: 8, keys: 1}}
	ws = append(ws, sweepWorkloads()...)
	ws = append(ws, workload{instances: 1, goroutines: 8, keys: 10_000})
	var out []result
	for _, w := range ws {
		if r, ok := find(rs, implLease, w); ok {
			out = append(out, r)
		}
	}
	return out
}

// find returns the row of im on w.
func find(rs []result, im impl, w workload) (result, bool) {
	for _, r := range rs {
		if r.impl == im && r.w == w {
			return r, true
		}
	}
	return result{}, false
}

// The rows the summary line quotes.
var (
	// summaryHot is the throughput row of the speedup, the lease's Redis
	// calls and its p99: one instance, 8 goroutines, the hot key.
	summaryHot = workload{instances: 1, goroutines: 8, keys: 1}
	// summaryOver and summaryUnder are the accuracy rows: 4 instances at
	// 10× and 0.8× the limit.
	summaryOver  = workload{instances: 4, goroutines: accuracyGoroutines, keys: 1, demand: 10}
	summaryUnder = workload{instances: 4, goroutines: accuracyGoroutines, keys: 1, demand: 0.8}
)

// summary holds the five figures of the summary line.
type summary struct {
	speedup, callsPer1k, overadmitPct, falseDenyPct, p99us float64
}

// summarize picks the summary figures out of rs.
func summarize(rs []result) (summary, error) {
	var missing []string
	get := func(im impl, w workload) result {
		r, ok := find(rs, im, w)
		if !ok {
			missing = append(missing, fmt.Sprintf("%v %s", im, w.short()))
		}
		return r
	}
	lh, th := get(implLease, summaryHot), get(implTokenBucket, summaryHot)
	lo, lu := get(implLease, summaryOver), get(implLease, summaryUnder)
	if len(missing) > 0 {
		return summary{}, fmt.Errorf("summary: rows not measured: %s", strings.Join(missing, ", "))
	}
	if th.throughput() <= 0 {
		return summary{}, errors.New("summary: the token bucket row made no decisions")
	}
	return summary{
		speedup:      lh.throughput() / th.throughput(),
		callsPer1k:   lh.callsPer1k(),
		overadmitPct: lo.overadmitPct(),
		falseDenyPct: lu.falseDenyPct(),
		p99us:        float64(lh.p99.Nanoseconds()) / 1e3,
	}, nil
}

// String returns the summary line.
func (s summary) String() string {
	return fmt.Sprintf("summary: speedup=%.1f redis_calls_per_1k=%.3f overadmit_pct=%.2f false_deny_pct=%.2f p99_us=%.2f",
		s.speedup, s.callsPer1k, s.overadmitPct, s.falseDenyPct, s.p99us)
}

// fmtInt formats n with thousands separators: 1234567 → "1,234,567".
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtSig formats v with about three significant digits and no exponent:
// 0.0123, 1.23, 12.3, 123, 1,234.
func fmtSig(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a < 0.01:
		return strconv.FormatFloat(v, 'f', 4, 64)
	case a < 0.1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtInt(int64(v + 0.5))
}

// fmtRate formats a rate per second as a whole number with separators.
func fmtRate(v float64) string { return fmtInt(int64(v + 0.5)) }

// fmtDur formats d as "5 s", "500 ms" or, failing both, d.String().
func fmtDur(d time.Duration) string {
	switch {
	case d != 0 && d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	case d != 0 && d%time.Millisecond == 0:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	return d.String()
}

// fmtLimit formats l as "2,000 per second, burst 200" (or "per 1m0s").
func fmtLimit(l ratelimit.Limit) string {
	per := "second"
	if l.Period != time.Second {
		per = fmtDur(l.Period)
	}
	return fmt.Sprintf("%s per %s, burst %s", fmtInt(int64(l.Rate)), per, fmtInt(int64(l.Burst)))
}

// fmtMicros formats d in microseconds with fmtSig.
func fmtMicros(d time.Duration) string { return fmtSig(float64(d.Nanoseconds()) / 1e3) }

// A column is one column of a Markdown table of results.
type column struct {
	head   string
	number bool // right-aligned
	cell   func(r result) string
}

// Cells shared by several tables.
var (
	colImpl      = column{"impl", false, func(r result) string { return r.impl.String() }}
	colInstances = column{"instances", true, func(r result) string { return strconv.Itoa(r.w.instances) }}
	colDemand    = column{"demand", false, func(r result) string { return r.w.demandLabel() }}
	colP50       = column{"p50 µs", true, func(r result) string { return fmtMicros(r.p50) }}
	colP99       = column{"p99 µs", true, func(r result) string { return fmtMicros(r.p99) }}
	colCalls     = column{"Redis calls/1k decisions", true, func(r result) string { return fmtSig(r.callsPer1k()) }}
	colAllocs    = column{"allocs/op", true, func(r result) string { return fmtSig(r.allocsPerOp()) }}
	colFailures  = column{"errors, fallbacks", true, func(r result) string { return r.failures() }}
	colRate      = column{"decisions/s", true, func(r result) string { return fmtRate(r.throughput()) }}
)

// writeResultTable writes a Markdown table of one row per result.
func writeResultTable(w io.Writer, cols []column, rs []result) {
	head := make([]string, len(cols))
	right := make([]bool, len(cols))
	for i, c := range cols {
		head[i], right[i] = c.head, c.number
	}
	rows := make([][]string, len(rs))
	for j, r := range rs {
		rows[j] = make([]string, len(cols))
		for i, c := range cols {
			rows[j][i] = c.cell(r)
		}
	}
	writeTable(w, head, right, rows)
}

// writeTable writes a Markdown table: its header, a separator that
// right-aligns the columns marked in right (which may be short), and rows.
func writeTable(w io.Writer, head []string, right []bool, rows [][]string) {
	line := func(cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
		if i < len(right) && right[i] {
			sep[i] = "---:"
		}
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// writeThroughputTable writes the markdown table of the throughput rows.
func writeThroughputTable(w io.Writer, rs []result) {
	writeResultTable(w, []column{
		colImpl, colInstances,
		{"goroutines/instance", true, func(r result) string { return strconv.Itoa(r.w.goroutines) }},
		{"keys", false, func(r result) string { return r.w.keyLabel() }},
		colDemand, colRate,
		{"ns/op", true, func(r result) string { return fmtSig(r.nsPerOp()) }},
		colP50, colP99,
		{"max µs", true, func(r result) string { return fmtMicros(r.max) }},
		colCalls, colAllocs, colFailures,
	}, throughputRows(rs))
}

// writeSweepTable writes the markdown table of the lease's key sweep.
func writeSweepTable(w io.Writer, rs []result) {
	writeResultTable(w, []column{
		{"keys", true, func(r result) string { return r.w.keyLabel() }},
		colRate,
		{"requests/s per key", true, func(r result) string { return fmtSig(r.perKeyRate()) }},
		colCalls, colP50, colP99, colAllocs,
	}, sweepRows(rs))
}

// writeAccuracyTable writes the markdown table of the accuracy rows.
func writeAccuracyTable(w io.Writer, rs []result) {
	count := func(head string, v func(r result) int64) column {
		return column{head, true, func(r result) string { return fmtInt(v(r)) }}
	}
	round := func(v float64) int64 { return int64(v + 0.5) }
	fixed := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	writeResultTable(w, []column{
		colImpl, colInstances, colDemand,
		count("offered/s", func(r result) int64 { return round(r.offeredRate()) }),
		{"seconds", true, func(r result) string { return fixed(r.elapsed.Seconds()) }},
		count("offered", func(r result) int64 { return r.ops }),
		count("skipped", func(r result) int64 { return r.skipped }),
		count("admitted", func(r result) int64 { return r.allowed }),
		count("ideal", func(r result) int64 { return round(r.ideal()) }),
		count("bound", func(r result) int64 { return round(r.bound()) }),
		{"overadmit %", true, func(r result) string { return fixed(r.overadmitPct()) }},
		{"false-deny %", true, func(r result) string { return fixed(r.falseDenyPct()) }},
		colP50, colP99, colCalls, colFailures,
	}, accuracyRows(rs))
}
