package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// steadyCalls returns n calls every gap from 0, each admitted when ok says
// so, with source src.
func steadyCalls(n int, gap time.Duration, ok func(i int) bool, src ratelimit.Source) []call {
	cs := make([]call, n)
	for i := range cs {
		cs[i] = call{at: time.Duration(i) * gap, ok: ok(i), src: src}
	}
	return cs
}

// TestIdealAdmitsAgreesWithExactAdmissions: the model replay and the
// accuracy rows' bucket count the same admissions over the same arrivals.
func TestIdealAdmitsAgreesWithExactAdmissions(t *testing.T) {
	lim := degradedLimit
	steps := []struct {
		name string
		gap  time.Duration
		n    int
	}{
		{"10× for 3 s", 100 * time.Microsecond, 30_000},
		{"4× for 2 s", 250 * time.Microsecond, 8_000},
		{"under the limit", 2 * time.Millisecond, 2_000},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cs := steadyCalls(st.n, st.gap, func(int) bool { return false }, ratelimit.SourceRedis)
			ns := make([]int64, len(cs))
			for i, c := range cs {
				ns[i] = int64(c.at)
			}
			got := 0
			for _, ok := range idealAdmits(cs, lim) {
				if ok {
					got++
				}
			}
			if want := exactAdmissions(ns, lim); int64(got) < want-1 || int64(got) > want+1 {
				t.Errorf("model replay admits %d, exact bucket %d", got, want)
			}
		})
	}
}

func TestBusiestWindow(t *testing.T) {
	// 3,000 admissions in the first 300 ms, then one every 1 ms.
	var cs []call
	for i := range 3000 {
		cs = append(cs, call{at: time.Duration(i) * 100 * time.Microsecond, ok: true})
	}
	for i := range 2000 {
		cs = append(cs, call{at: 300*time.Millisecond + time.Duration(i)*time.Millisecond, ok: i%2 == 0})
	}
	if got, want := busiestWindow(cs, time.Second), 3000+350; got != want {
		t.Errorf("busiest 1 s = %d, want %d", got, want)
	}
	if got := busiestWindow(nil, time.Second); got != 0 {
		t.Errorf("busiest of nothing = %d", got)
	}
}

// syntheticDegraded returns runs for every fault and limiter: the lease
// admits 10% over the ideal by fallback during the fault, the token
// bucket denies with errors during it, redis_rate is exact.
func syntheticDegraded(short bool) []degradedRun {
	var rs []degradedRun
	for _, f := range faultsFor(short) {
		gap := time.Duration(float64(time.Second) / f.offered())
		n := int(f.run / gap)
		for _, im := range impls {
			r := degradedRun{impl: im, f: f, from: f.at, to: f.at + f.d}
			cs := steadyCalls(n, gap, func(int) bool { return false }, ratelimit.SourceRedis)
			ideal := idealAdmits(cs, degradedLimit)
			for i := range cs {
				cs[i].ok = ideal[i]
				during := cs[i].at >= r.from && cs[i].at < r.to
				switch {
				case during && im == implLease:
					cs[i].src = ratelimit.SourceFallback
					cs[i].ok = ideal[i] || i%10 < 2
				case during && im == implTokenBucket:
					cs[i].src, cs[i].ok, cs[i].err = ratelimit.SourceFallback, false, true
				}
			}
			r.calls = cs
			r.analyze()
			rs = append(rs, r)
		}
	}
	return rs
}

func TestDegradedAnalysis(t *testing.T) {
	for _, r := range syntheticDegraded(false) {
		admitted, byFallback, ideal := r.bins()
		if int(sum(admitted)) != r.admitted || int(sum(ideal)) != r.ideal {
			t.Errorf("%v %s: bins sum to %v admitted, %v ideal; totals %d, %d", r.impl, r.f.label(), sum(admitted), sum(ideal), r.admitted, r.ideal)
		}
		switch r.impl {
		case implRedisRate:
			if r.admitted != r.ideal || r.errs != 0 || r.fallbacks != 0 || r.resumed != 0 {
				t.Errorf("redis_rate %s: %+v", r.f.label(), r)
			}
		case implTokenBucket:
			if r.duringAdmitted != 0 || r.errs == 0 || r.errs != r.fallbacks || r.deviationPct() >= 0 {
				t.Errorf("tokenbucket %s: during %d, errors %d, fallbacks %d, deviation %.2f", r.f.label(), r.duringAdmitted, r.errs, r.fallbacks, r.deviationPct())
			}
		case implLease:
			if r.duringAdmitted <= r.duringIdeal || int(sum(byFallback)) == 0 || r.deviationPct() <= 0 {
				t.Errorf("lease %s: during %d (ideal %d), deviation %.2f", r.f.label(), r.duringAdmitted, r.duringIdeal, r.deviationPct())
			}
		}
		if r.busiest > allowance()+1 && r.impl == implRedisRate {
			t.Errorf("redis_rate busiest 1 s %d above the allowance %d", r.busiest, allowance())
		}
	}
}

func TestDegradedSectionAndCharts(t *testing.T) {
	rs := syntheticDegraded(false)
	rp := &report{redisVersion: "7.0.15", ownServer: true, degraded: degradedSection{runs: rs}}
	var b bytes.Buffer
	rp.writeDegraded(&b)
	md := b.String()
	for _, want := range []string{
		"## Degraded mode: Redis paused and killed",
		"limit of 1,000 per second, burst 1,000",
		"4 instances, 10× the rate (10,000/s)", "2 instances, 4× the rate (4,000/s)",
		"13/10/6/3", "`algorithms.TokenBucketModel`", "**Reading the degraded-mode results.**",
		"| redis_rate | pause 200 ms | 4 | 10× (10,000/s) | 60,000 |",
		"| lease | kill 3 s | 2 | 4× (4,000/s) |",
		"while Redis was down (3.00 s) 0 admitted (ideal 3,000, bound 4,600), in the 2.00 s after the restart 2,000 (ideal 2,000)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q in\n%s", want, md)
		}
	}
	if i := strings.Index(md, "%!"); i >= 0 {
		t.Errorf("section has a formatting error near %q", md[max(0, i-60):min(len(md), i+40)])
	}
	if got := strings.Count(md, "\n| "); got != 1+1+len(rs) {
		t.Errorf("section has %d table lines, want %d", got, 2+len(rs))
	}
	dir := t.TempDir()
	if err := writeDegradedCharts(dir, rs); err != nil {
		t.Fatal(err)
	}
	for _, im := range impls {
		if !strings.Contains(md, "](img/"+degradedChartFile(im)+")") {
			t.Errorf("section does not link %s", degradedChartFile(im))
		}
		f, err := os.Open(filepath.Join(dir, degradedChartFile(im)))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", degradedChartFile(im), err)
		}
		if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 {
			t.Errorf("%s is only %v", degradedChartFile(im), b)
		}
	}

	b.Reset()
	rp.degraded = degradedSection{skipped: "no redis-server to start: not on PATH"}
	rp.writeDegraded(&b)
	if !strings.Contains(b.String(), "Not measured in this run: no redis-server to start") {
		t.Errorf("a skipped section says %q", b.String())
	}
	b.Reset()
	writeDegradedTable(&b, nil)
	if b.Len() != 0 {
		t.Errorf("an empty table prints %q", b.String())
	}
}

// TestDegradedAgainstRealRedis runs each limiter through a short pause and
// a short kill on real redis-servers, to check the plumbing: arrivals are
// recorded, the fault happens, the lease under FailLocal never returns an
// error and falls back while Redis is down, the token bucket under
// FailClosed returns errors then, and nobody admits more than the limit
// allows (plus one burst for the restarted, empty Redis).
func TestDegradedAgainstRealRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis-servers and runs for about 8 s")
	}
	faults := []fault{
		{kind: faultPause, d: 150 * time.Millisecond, at: 400 * time.Millisecond, run: 1200 * time.Millisecond, goroutines: []int{3, 2}, demand: 4},
		{kind: faultKill, d: 500 * time.Millisecond, at: 300 * time.Millisecond, run: 1500 * time.Millisecond, goroutines: []int{3, 2}, demand: 4},
	}
	for _, f := range faults {
		for _, im := range impls {
			t.Run(im.String()+"/"+strings.ReplaceAll(f.label(), " ", ""), func(t *testing.T) {
				r, err := runFault(context.Background(), im, f, "bench.degraded:")
				if err != nil {
					if strings.Contains(err.Error(), errNoServer.Error()) {
						t.Skip(err)
					}
					t.Fatal(err)
				}
				t.Log(degradedLine(r))
				if want := int(f.run.Seconds() * f.offered() * 0.5); len(r.calls) < want {
					t.Errorf("%d calls recorded, want at least %d", len(r.calls), want)
				}
				if r.from <= 0 || r.to <= r.from {
					t.Errorf("fault from %v to %v", r.from, r.to)
				}
				// A restarted Redis starts from a full bucket: one more burst.
				bound := 2*degradedLimit.Burst + int(degradedLimit.PerSecondRate()*f.run.Seconds())
				if r.admitted > bound {
					t.Errorf("admitted %d, above 2 × burst + rate × run = %d", r.admitted, bound)
				}
				if f.kind != faultKill {
					return
				}
				switch im {
				case implLease:
					if r.errs != 0 || r.fallbacks == 0 {
						t.Errorf("lease through a kill: %d errors, %d fallback decisions; want none and some", r.errs, r.fallbacks)
					}
				case implTokenBucket:
					if r.errs == 0 || r.errs != r.fallbacks {
						t.Errorf("tokenbucket through a kill: %d errors, %d fallback decisions; want some, as many (FailClosed)", r.errs, r.fallbacks)
					}
				}
				// redis_rate's calls may wait out a short outage in the
				// client's dial retries, so it need not see an error.
			})
		}
	}
}
