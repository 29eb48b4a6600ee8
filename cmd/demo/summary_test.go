package main

import (
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

const ms = time.Millisecond

// evs builds events at the given instants with the given results: "a"
// admitted, "d" denied, "f" failed.
func evs(at []time.Duration, res string) []event {
	out := make([]event, len(at))
	for i, t := range at {
		out[i] = event{at: t, lat: time.Duration(i+1) * time.Microsecond}
		switch res[i] {
		case 'a':
			out[i].res = resAdmitted
		case 'd':
			out[i].res = resDenied
		default:
			out[i].res = resFailed
		}
	}
	return out
}

func TestReplayOneClient(t *testing.T) {
	// 2/s, burst 3: three at t0, then one token every 500 ms.
	lim := tiers.Client("second", ratelimit.PerSecond(2).WithBurst(3))
	p := plan{tiers: []string{"free"}, clients: []client{{key: "a", limits: []tiers.Limit{lim}}}}
	steps := []struct {
		name     string
		at       []time.Duration
		res      string
		ideal    int64
		falseDen int64
	}{
		{"exact", []time.Duration{0, 1, 2, 3, 500 * ms, 501 * ms}, "aaadad", 4, 0},
		// The bucket is empty at 3 ns, so that denial is right; the token
		// of 500 ms is there at 502 ms and, unspent, at 503 ms: both
		// denials are false.
		{"late", []time.Duration{0, 1, 2, 3, 502 * ms, 503 * ms}, "aaaddd", 4, 2},
		// A token due at the very moment of the request may or may not be
		// there, by rounding: that denial is not counted.
		{"due", []time.Duration{0, 1, 2, 3, 500 * ms}, "aaadd", 4, 0},
		// Over-admission: admitted at 3 ns with the bucket empty; the
		// ideal, charged with its own choices, admits 4 as before, and
		// the denial at 500 ms is right: the real bucket is already spent.
		{"over", []time.Duration{0, 1, 2, 3, 500 * ms, 501 * ms}, "aaaadd", 4, 0},
		// Failed checks are requests to the ideal, but spend nothing of the
		// real bucket (tiers refunds after an error): the denial is false.
		{"failed", []time.Duration{0, 1, 2, 3}, "fffd", 3, 1},
		// Demand under the limit: the ideal admits all.
		{"under", []time.Duration{0, 600 * ms, 1200 * ms, 1800 * ms}, "aaaa", 4, 0},
		// After a second idle, the bucket is full again (3, not 4).
		{"refill", []time.Duration{0, 1, 2, 2000 * ms, 2001 * ms, 2002 * ms, 2003 * ms}, "aaaaaad", 6, 0},
	}
	for _, s := range steps {
		got := replay(p, [][]event{evs(s.at, s.res)})
		if got[0].admitted != s.ideal || got[0].falseDenials != s.falseDen {
			t.Errorf("%s: replay = %+v, want ideal %d, false denials %d", s.name, got[0], s.ideal, s.falseDen)
		}
	}
}

func TestReplayTierWide(t *testing.T) {
	// Two clients of 10/s each, and the tier at most 1/s with a burst of 3:
	// the tier-wide limit binds. A request denied by the tier-wide limit
	// takes nothing from its client's own limit (all or nothing).
	own := tiers.Client("second", ratelimit.PerSecond(10).WithBurst(2))
	all := tiers.Shared("all", ratelimit.PerSecond(1).WithBurst(3))
	p := plan{tiers: []string{"free"}, clients: []client{
		{key: "a", limits: []tiers.Limit{own, all}},
		{key: "b", limits: []tiers.Limit{own, all}},
	}}
	a := evs([]time.Duration{0, 2, 4, 6}, "aadd")
	b := evs([]time.Duration{1, 3, 5}, "ddd")
	got := replay(p, [][]event{a, b})
	// Ideal: a@0, b@1, a@2 take the tier's 3 tokens; a's own burst of 2 is
	// spent by a@0, a@2. Real: a admitted twice; b@1 was denied with a
	// tier token left (false), b@3 too: the real admissions spent only 2
	// of the tier's 3 tokens by then. b@5 likewise; a@4 and a@6 were
	// denied by a's own limit, rightly.
	if got[0].admitted != 3 || got[0].falseDenials != 3 {
		t.Errorf("replay = %+v, want ideal 3, false denials 3", got[0])
	}
}

func TestSummarize(t *testing.T) {
	lim := tiers.Client("second", ratelimit.PerSecond(2).WithBurst(3))
	p := plan{tiers: []string{"free", "pro"}, clients: []client{
		{key: "a", tier: 0, limits: []tiers.Limit{lim}},
		{key: "b", tier: 1, limits: []tiers.Limit{lim}},
	}}
	e := [][]event{
		evs([]time.Duration{0, 1, 2, 3, 4}, "aaaad"), // over-admits one
		evs([]time.Duration{0, 1}, "ad"),             // one false denial
	}
	e[0][4].fallback = true
	r := summarize(modeLease, 10*time.Second, p, e, []int64{40, 10, 1}, 51)
	free, pro := r.tiers[0], r.tiers[1]
	if free.requests != 5 || free.admitted != 4 || free.denied != 1 || free.ideal != 3 || free.fallback != 1 {
		t.Errorf("free = %+v", free)
	}
	if got := free.vsIdeal(); got < 33.3 || got > 33.4 {
		t.Errorf("free vs ideal = %.2f%%, want +33.3%% (4 admitted, ideal 3)", got)
	}
	if free.callsPer1k() != 8000 {
		t.Errorf("free calls/1k = %v, want 8000 (40 calls, 5 decisions)", free.callsPer1k())
	}
	if free.p50 != 3*time.Microsecond || free.p99 != 5*time.Microsecond {
		t.Errorf("free p50, p99 = %v, %v; want 3µs, 5µs", free.p50, free.p99)
	}
	if pro.vsIdeal() != -50 || pro.falseDenials != 1 || pro.ideal != 2 {
		t.Errorf("pro = %+v (vs ideal %v)", pro, pro.vsIdeal())
	}
	if c := (cause{limit: "second", src: ratelimit.SourceRedis}); pro.causes[c] != 1 || r.all.causes[cause{"pro.second", c.src}] != 1 {
		t.Errorf("causes: pro %v, all %v; want the one false denial, by second, from Redis", pro.causes, r.all.causes)
	}
	if r.all.requests != 7 || r.all.calls != 51 || r.all.ideal != 5 || r.all.falseDenials != 1 {
		t.Errorf("all = %+v", r.all)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	if p50, p99 := percentiles(ds); p50 != 50 || p99 != 99 {
		t.Errorf("percentiles(1..100) = %v, %v; want 50, 99", p50, p99)
	}
	if p50, p99 := percentiles([]time.Duration{7}); p50 != 7 || p99 != 7 {
		t.Errorf("percentiles(7) = %v, %v", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("percentiles(nil) = %v, %v", p50, p99)
	}
}

func TestPrintSummary(t *testing.T) {
	p := plan{tiers: []string{"free", "pro"}}
	l := modeResult{mode: modeLease, elapsed: 10 * time.Second, tiers: []stats{
		{requests: 1000, admitted: 110, ideal: 100, falseDenials: 4, calls: 200, p50: 800, p99: 2 * ms,
			causes: map[cause]int64{{"all", ratelimit.SourceLocal}: 3, {"second", ratelimit.SourceRedis}: 1}},
		{requests: 1000, admitted: 1000, ideal: 1000, calls: 300, p50: 900, p99: ms},
	}, all: stats{requests: 2000, admitted: 1110, ideal: 1100, falseDenials: 4, calls: 500, p50: 850, p99: 2 * ms}}
	d := modeResult{mode: modeDirect, elapsed: 10 * time.Second, tiers: []stats{
		{requests: 1000, admitted: 100, ideal: 100, calls: 1500, p50: 250 * time.Microsecond, p99: 3 * ms},
		{requests: 1000, admitted: 1000, ideal: 1000, calls: 1000, p50: 240 * time.Microsecond, p99: 2 * ms},
	}, all: stats{requests: 2000, admitted: 1100, ideal: 1100, calls: 2500, p50: 245 * time.Microsecond, p99: 3 * ms}}
	var b strings.Builder
	printSummary(&b, p, []modeResult{l, d}, 3, true)
	out := b.String()
	for _, want := range []string{
		"free   lease      1000      110      100   +10.0%         4      200    800ns    2.0ms",
		"free   direct     1000      100      100    +0.0%         0     1500    250µs    3.0ms",
		"all    direct     2000     1100     1100    +0.0%         0     1250    245µs    3.0ms",
		"  free   lease  3 all remembered, 1 second by Redis\n",
		"  Redis calls    250 vs 1250 per 1,000 decisions (5.0× fewer): free 200 vs 1500, pro 300 vs 1000\n",
		"  latency        p50 850ns vs 245µs, p99 2.0ms vs 3.0ms\n",
		"  admitted       +0.9% vs +0.0% of what exact buckets admit (1110 of 1100, 1100 of 1100)\n",
		"  false denials  4 vs 0 (0.2% vs 0.0% of the requests)\n",
		"Leasing adds two causes on busy keys", "as the admitted totals show",
		"false-den", "miniredis",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "  free   direct") {
		t.Errorf("causes listed for a mode without false denials:\n%s", out)
	}
	for i, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d has %d columns:\n%s", i, n, line)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("  ab ", "one two three four", 13)
	if want := "  ab one two\n     three\n     four\n"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}

// TestReplayCauses checks that false denials are split by the limit that
// denied and where it decided.
func TestReplayCauses(t *testing.T) {
	own := tiers.Client("second", ratelimit.PerSecond(10).WithBurst(5))
	all := tiers.Shared("all", ratelimit.PerSecond(1).WithBurst(5))
	p := plan{tiers: []string{"free"}, clients: []client{{key: "a", limits: []tiers.Limit{own, all}}}}
	e := evs([]time.Duration{0, 1, 2, 3}, "addd") // every limit has tokens: 3 false denials
	e[1].by, e[1].src = 1, ratelimit.SourceLocal
	e[2].by, e[2].src = 1, ratelimit.SourceLocal
	e[3].by, e[3].src = 0, ratelimit.SourceRedis
	got := replay(p, [][]event{e})[0]
	want := map[cause]int64{{"all", ratelimit.SourceLocal}: 2, {"second", ratelimit.SourceRedis}: 1}
	if got.falseDenials != 3 || len(got.causes) != 2 || got.causes[cause{"all", ratelimit.SourceLocal}] != 2 ||
		got.causes[cause{"second", ratelimit.SourceRedis}] != 1 {
		t.Errorf("replay = %+v, want causes %v", got, want)
	}
}

func TestFmtDur(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "-"}, {850, "850ns"}, {1234, "1.2µs"}, {240 * time.Microsecond, "240µs"},
		{3500 * time.Microsecond, "3.5ms"}, {85 * ms, "85ms"}, {1500 * ms, "1.5s"},
	} {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
