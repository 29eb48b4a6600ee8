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

// writeThroughputTable writes the markdown table of the throughput rows.
func writeThroughputTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| impl | instances | goroutines/instance | keys | demand | decisions/s | ns/op | p50 µs | p99 µs | max µs | Redis calls/1k decisions | allocs/op | errors, fallbacks |")
	fmt.Fprintln(w, "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range throughputRows(rs) {
		fmt.Fprintf(w, "| %v | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.impl, r.w.instances, r.w.goroutines, r.w.keyLabel(), r.w.demandLabel(),
			fmtInt(int64(r.throughput()+0.5)), fmtSig(r.nsPerOp()), fmtMicros(r.p50), fmtMicros(r.p99), fmtMicros(r.max),
			fmtSig(r.callsPer1k()), fmtSig(r.allocsPerOp()), r.failures())
	}
}

// writeSweepTable writes the markdown table of the lease's key sweep.
func writeSweepTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| keys | decisions/s | requests/s per key | Redis calls/1k decisions | p50 µs | p99 µs | allocs/op |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range sweepRows(rs) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n",
			r.w.keyLabel(), fmtInt(int64(r.throughput()+0.5)), fmtSig(r.perKeyRate()),
			fmtSig(r.callsPer1k()), fmtMicros(r.p50), fmtMicros(r.p99), fmtSig(r.allocsPerOp()))
	}
}

// writeAccuracyTable writes the markdown table of the accuracy rows.
func writeAccuracyTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| impl | instances | demand | offered/s | seconds | offered | skipped | admitted | ideal | bound | overadmit % | false-deny % | p50 µs | p99 µs | Redis calls/1k decisions | errors, fallbacks |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range accuracyRows(rs) {
		fmt.Fprintf(w, "| %v | %d | %s | %s | %.2f | %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n",
			r.impl, r.w.instances, r.w.demandLabel(), fmtInt(int64(r.offeredRate()+0.5)), r.elapsed.Seconds(),
			fmtInt(r.ops), fmtInt(r.skipped), fmtInt(r.allowed), fmtInt(int64(r.ideal()+0.5)), fmtInt(int64(r.bound()+0.5)),
			r.overadmitPct(), r.falseDenyPct(), fmtMicros(r.p50), fmtMicros(r.p99),
			fmtSig(r.callsPer1k()), r.failures())
	}
}
