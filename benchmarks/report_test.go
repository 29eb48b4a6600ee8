package main

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

func TestFmtInt(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567",
		-1234: "-1,234", 1000000000: "1,000,000,000",
	} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFmtSig(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.00049, "0.0005"}, {0.0123, "0.012"}, {0.125, "0.12"}, {1.234, "1.23"},
		{12.34, "12.3"}, {123.4, "123"}, {999.6, "1,000"}, {123456.7, "123,457"},
	} {
		if got := fmtSig(tt.v); got != tt.want {
			t.Errorf("fmtSig(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for d, want := range map[time.Duration]string{5 * time.Second: "5 s", 500 * time.Millisecond: "500 ms", 1500 * time.Microsecond: "1.5ms", 0: "0s"} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := fmtLimit(accuracyLimit); got != "1,000 per second, burst 1,000" {
		t.Errorf("fmtLimit = %q", got)
	}
	if got := fmtLimit(ratelimit.PerMinute(60)); got != "60 per 60 s, burst 60" {
		t.Errorf("fmtLimit(PerMinute(60)) = %q", got)
	}
	if got := fmtRate(5922327.6); got != "5,922,328" {
		t.Errorf("fmtRate = %q", got)
	}
	if got := fmtMicros(1500 * time.Nanosecond); got != "1.50" {
		t.Errorf("fmtMicros(1.5µs) = %q, want 1.50", got)
	}
}

func TestResultMetrics(t *testing.T) {
	thr := result{w: workload{instances: 2, goroutines: 8, keys: 100}, ops: 2_000_000, elapsed: 2 * time.Second, calls: 500, mallocs: 1_000_000}
	if got := thr.throughput(); got != 1_000_000 {
		t.Errorf("throughput = %v, want 1e6", got)
	}
	if got := thr.nsPerOp(); got != 1000 {
		t.Errorf("nsPerOp = %v, want 1000", got)
	}
	if got := thr.callsPer1k(); got != 0.25 {
		t.Errorf("callsPer1k = %v, want 0.25", got)
	}
	if got := thr.allocsPerOp(); got != 0.5 {
		t.Errorf("allocsPerOp = %v, want 0.5", got)
	}
	if got := thr.perKeyRate(); got != 5000 { // 1e6/s over 100 keys at 2 instances
		t.Errorf("perKeyRate = %v, want 5000", got)
	}

	// Accuracy at 1,000/s burst 1,000 over 2 s: the ideal is 3,000 when
	// more than that was offered.
	over := result{w: summaryOver, elapsed: 2 * time.Second, ops: 20_000, allowed: 3_150}
	if got := over.ideal(); got != 3000 {
		t.Fatalf("ideal = %v, want 3000", got)
	}
	if got := over.overadmitPct(); math.Abs(got-5) > 1e-9 {
		t.Errorf("overadmitPct = %v, want 5", got)
	}
	if got := over.falseDenyPct(); got != 0 {
		t.Errorf("falseDenyPct = %v, want 0", got)
	}
	// Below the limit the ideal is everything offered.
	under := result{w: summaryUnder, elapsed: 2 * time.Second, ops: 1_600, allowed: 1_584}
	if got := under.ideal(); got != 1600 {
		t.Fatalf("ideal = %v, want 1600", got)
	}
	if got := under.falseDenyPct(); math.Abs(got-1) > 1e-9 {
		t.Errorf("falseDenyPct = %v, want 1", got)
	}
	if got := under.overadmitPct(); got != 0 {
		t.Errorf("overadmitPct = %v, want 0", got)
	}
	var zero result
	if zero.throughput() != 0 || zero.nsPerOp() != 0 || zero.callsPer1k() != 0 || zero.allocsPerOp() != 0 || zero.falseDenyPct() != 0 {
		t.Error("a row with no decisions must report zeros, not NaN or Inf")
	}
}

func TestExactAdmissions(t *testing.T) {
	sec := int64(time.Second)
	tests := []struct {
		name     string
		lim      ratelimit.Limit
		arrivals []int64
		want     int64
	}{
		{"none", ratelimit.PerSecond(1), nil, 0},
		{"a burst takes the bucket", ratelimit.PerSecond(1).WithBurst(2), []int64{0, 0, 0}, 2},
		// burst 2, 1/s: t=0 admits 2 and denies 1; t=0.5 has half a
		// token; t=1 has one; t=3 is full again (2, not 3: the bucket
		// overflowed during the pause).
		{"refill and overflow", ratelimit.PerSecond(1).WithBurst(2),
			[]int64{3 * sec, 0, 0, sec / 2, 0, sec, sec, 3 * sec, 3 * sec}, 5},
		{"steady 0.8x admits all", ratelimit.PerSecond(1000).WithBurst(10), every(sec/800, 800), 800},
		// 2× demand: the burst plus one token per ms. The last arrival is
		// at 999.5 ms, so 999 whole tokens were earned.
		{"steady 2x admits burst + rate x elapsed", ratelimit.PerSecond(1000).WithBurst(10), every(sec/2000, 2000), 10 + 999},
	}
	for _, tt := range tests {
		if got := exactAdmissions(tt.arrivals, tt.lim); got != tt.want {
			t.Errorf("%s: exactAdmissions = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// every returns n arrivals step apart, from 0.
func every(step int64, n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = int64(i) * step
	}
	return s
}

func TestIdealUsesTheReplay(t *testing.T) {
	r := result{w: summaryOver, elapsed: 2 * time.Second, ops: 20_000, allowed: 2_900, exact: 2_900, replayed: true}
	if r.bound() != 3000 || r.ideal() != 2900 || r.falseDenyPct() != 0 || r.overadmitPct() != 0 {
		t.Errorf("bound %v ideal %v false-deny %v overadmit %v; want 3000, 2900 (the replay), 0, 0",
			r.bound(), r.ideal(), r.falseDenyPct(), r.overadmitPct())
	}
}

func TestPlan(t *testing.T) {
	if got := len(plan(true)); got != 36+12 {
		t.Errorf("short plan has %d rows, want 48", got)
	}
	full := plan(false)
	if got := len(full); got != 36+3+12 {
		t.Errorf("full plan has %d rows, want 51", got)
	}
	// Every implementation runs every matrix workload, side by side.
	for _, w := range append(throughputWorkloads(), accuracyWorkloads()...) {
		for _, im := range impls {
			n := 0
			for _, j := range full {
				if j.im == im && j.w == w {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%v %s runs %d times, want 1", im, w.short(), n)
			}
		}
	}
	// The summary's rows are in the plan.
	for _, w := range []workload{summaryHot, summaryOver, summaryUnder} {
		found := false
		for _, j := range plan(true) {
			found = found || (j.im == implLease && j.w == w)
		}
		if !found {
			t.Errorf("short plan lacks the summary row %s", w.short())
		}
	}
}

func TestSummary(t *testing.T) {
	rs := syntheticResults()
	s, err := summarize(rs)
	if err != nil {
		t.Fatal(err)
	}
	// From syntheticResults: lease 5e6/s and token bucket 25,000/s on the
	// hot row; the lease made 50 calls for 1.5e7 decisions; p99 1.25 µs.
	want := "summary: speedup=200.0 redis_calls_per_1k=0.003 overadmit_pct=0.50 false_deny_pct=0.25 p99_us=1.25"
	if got := s.String(); got != want {
		t.Errorf("summary\n got %s\nwant %s", got, want)
	}
	var without []result
	for _, r := range rs {
		if r.impl != implLease || r.w != summaryHot {
			without = append(without, r)
		}
	}
	if _, err := summarize(without); err == nil || !strings.Contains(err.Error(), "lease 1i 8g hot") {
		t.Errorf("summary without the lease hot row: error %v, want it to name the row", err)
	}
}

func TestTables(t *testing.T) {
	rs := syntheticResults()
	var b bytes.Buffer
	writeThroughputTable(&b, rs)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+36 {
		t.Fatalf("throughput table has %d lines, want 38", len(lines))
	}
	want := "| lease | 1 | 8 | hot | unlimited | 5,000,000 | 200 | 0.25 | 1.25 | 2.00 | 0.0033 | 0.0010 | 0 |"
	if !strings.Contains(b.String(), want+"\n") {
		t.Errorf("throughput table lacks\n%s\nin\n%s", want, b.String())
	}
	b.Reset()
	writeAccuracyTable(&b, rs)
	lines = strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+12 {
		t.Fatalf("accuracy table has %d lines, want 14", len(lines))
	}
	want = "| lease | 4 | 10× | 10,000 | 2.00 | 20,000 | 0 | 3,015 | 3,000 | 3,000 | 0.50 | 0.00 | 0.25 | 1.25 | 0.25 | 0 |"
	if !strings.Contains(b.String(), want+"\n") {
		t.Errorf("accuracy table lacks\n%s\nin\n%s", want, b.String())
	}
	b.Reset()
	writeSweepTable(&b, rs)
	if got := strings.Count(b.String(), "\n"); got != 2+5 {
		t.Errorf("sweep table has %d lines, want 7:\n%s", got, b.String())
	}
}

func TestMarkdownAndCharts(t *testing.T) {
	rs := syntheticResults()
	sum, err := summarize(rs)
	if err != nil {
		t.Fatal(err)
	}
	rp := &report{
		m:            machine{nproc: 2, gomaxprocs: 2, cpu: "Test CPU", goVersion: "go1.26", goos: "linux", goarch: "amd64", clockNs: 20},
		redisVersion: "7.0.15", ownServer: true, ph: phasesFor(false),
		date: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC), took: 200 * time.Second,
		loadStart: "1.0 1.0 1.0", loadEnd: "2.0 2.0 2.0", results: rs, sum: sum,
	}
	var b bytes.Buffer
	if err := rp.markdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"Generated by `go run ./benchmarks` on 2030-01-02 03:04 UTC; the run took 3m20s.",
		"| CPU | Test CPU |", "| nproc | 2 |", "| GOMAXPROCS | 2 |", "redis-server 7.0.15",
		"These numbers are noisy", sum.String(), "## Reading the results", "Where leasing stops paying",
		"go test -run '^$' -bench BenchmarkCompare",
		// The reading quotes the rows and the lease's defaults.
		"At 1 instance, 8 goroutines, the lease made 5,000,000 decisions/s",
		"capped at 5% of the burst. A new key's demand estimate starts at zero",
		"(lease TTL 2 s, accuracy budget 5% of the burst)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if i := strings.Index(md, "<no value>"); i >= 0 {
		t.Errorf("the reading's template names a missing figure near %q", md[max(0, i-60):min(len(md), i+40)])
	}
	if i := strings.Index(md, "%!"); i >= 0 {
		t.Errorf("markdown has a formatting error near %q", md[max(0, i-60):min(len(md), i+40)])
	}
	dir := t.TempDir()
	if err := writeCharts(filepath.Join(dir, "img"), rs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "**Errors and fallbacks.** None") {
		t.Error("markdown does not say that no row had errors or fallbacks")
	}
	// A row with fallback decisions is listed and explained.
	for i, r := range rp.results {
		if r.impl == implLease && r.w == (workload{instances: 4, goroutines: 64, keys: 1}) {
			rp.results[i].fallbacks, rp.results[i].max = 300_000, 1500*time.Millisecond
		}
	}
	b.Reset()
	if err := rp.markdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"- lease, 4i 64g hot: 0 errors and 300,000 fallback decisions, 1.96% of 15,300,000 calls; lease refills that failed: 0; slowest call 1,500 ms.",
		"for at most the refill timeout plus 10 ms (here 1.01s)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, c := range charts {
		link := "](img/" + c.file + ")"
		if !strings.Contains(md, link) {
			t.Errorf("markdown does not link %s", c.file)
		}
		f, err := os.Open(filepath.Join(dir, "img", c.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 300 {
			t.Errorf("%s is only %v", c.file, b)
		}
	}
}

func TestVersus(t *testing.T) {
	if got := versus(compareWord(80, 100), compareWord(50, 100)); got != "slower than both per-request limiters" {
		t.Errorf("versus = %q", got)
	}
	if got := versus(compareWord(105, 100), compareWord(50, 100)); got != "about as fast as the token bucket and slower than redis_rate" {
		t.Errorf("versus = %q", got)
	}
	if got := compareWord(120, 100); got != "faster than" {
		t.Errorf("compareWord(120, 100) = %q", got)
	}
}

func TestEnvParsers(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	if got := infoField(info, "redis_version"); got != "7.0.15" {
		t.Errorf("infoField = %q, want 7.0.15", got)
	}
	if got := infoField(info, "tcp_port"); got != "unknown" {
		t.Errorf("missing field = %q, want unknown", got)
	}
	p := filepath.Join(t.TempDir(), "cpuinfo")
	if err := os.WriteFile(p, []byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Test CPU @ 2.00GHz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := cpuModel(p); got != "Test CPU @ 2.00GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(filepath.Join(t.TempDir(), "none")); got != "unknown" {
		t.Errorf("cpuModel of a missing file = %q, want unknown", got)
	}
}

// syntheticResults returns one plausible row per job of a full plan. The
// figures the tests check are chosen to be exact in binary.
func syntheticResults() []result {
	var rs []result
	for _, j := range plan(false) {
		r := result{impl: j.im, w: j.w, elapsed: 2 * time.Second, p50: 250 * time.Nanosecond, p99: 1250 * time.Nanosecond, max: 2 * time.Microsecond}
		perRequest := j.im != implLease
		switch {
		case j.w.accuracy():
			r.ops = int64(j.w.demand * 1000 * 2) // accuracyLimit: 1,000/s, burst 1,000
			r.allowed = min(r.ops, 3000)
			if j.im == implLease && j.w == summaryOver {
				r.allowed = 3015 // 0.5% over the ideal of 3,000
			}
			if j.im == implLease && j.w == summaryUnder {
				r.allowed = r.ops - 4 // 0.25% of 1,600 falsely denied
			}
			r.calls = r.ops / 4000
		case perRequest:
			r.ops = 50_000
			r.calls = r.ops
			r.mallocs = uint64(r.ops) * 24
			r.p50, r.p99, r.max = 200*time.Microsecond, time.Millisecond, 5*time.Millisecond
		default:
			r.ops = 10_000_000
			if j.w.keys > 1 {
				r.ops = 50_000
			}
			r.calls = 50 * r.ops / 15_000_000
			r.mallocs = uint64(r.ops) / 1000
		}
		if !perRequest && !j.w.accuracy() && j.w.keys == 1 {
			r.calls = 50
			r.ops = 15_000_000
			r.mallocs = 15_000
			r.elapsed = 3 * time.Second
		}
		rs = append(rs, r)
	}
	return rs
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		d    ratelimit.Decision
		want outcome
	}{
		{ratelimit.Decision{Allowed: true, Source: ratelimit.SourceLocal}, admitted},
		{ratelimit.Decision{Allowed: true, Source: ratelimit.SourceRedis}, admitted},
		{ratelimit.Decision{Source: ratelimit.SourceRedis}, denied},
		{ratelimit.Decision{Allowed: true, Source: ratelimit.SourceFallback}, fallback},
		{ratelimit.Decision{Source: ratelimit.SourceFallback}, fallback},
	}
	for _, tt := range tests {
		if got := outcomeOf(tt.d); got != tt.want {
			t.Errorf("outcomeOf(%+v) = %v, want %v", tt.d, got, tt.want)
		}
	}
	var s loopStats
	s.note(admitted, nil, time.Microsecond)
	s.note(denied, nil, time.Microsecond)
	s.note(fallback, nil, time.Microsecond)
	s.note(admitted, errors.New("boom"), time.Microsecond)
	if s.ops != 2 || s.allowed != 1 || s.fallbacks != 1 || s.errs != 1 || s.h.count() != 4 || s.firstErr == nil {
		t.Errorf("after admitted, denied, fallback, error: %+v", s)
	}
	if got := (result{errs: 3, fallbacks: 1200}).failures(); got != "3, 1,200" {
		t.Errorf("failures = %q", got)
	}
	if got := (result{}).failures(); got != "0" {
		t.Errorf("failures of a clean row = %q", got)
	}
}
