package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// degradedSection is what the degraded-mode section of the report shows.
type degradedSection struct {
	runs    []degradedRun
	skipped string // why the section did not run; "" when it ran
}

// degradedChartFile returns the chart of im under img/.
func degradedChartFile(im impl) string { return "degraded_" + im.String() + ".png" }

// implCall says how each limiter is built in the degraded-mode runs.
var implCall = map[impl]string{
	implLease:       "`lease.New(rdb, lim)`",
	implTokenBucket: "`algorithms.NewLimiter(rdb, lim, algorithms.WithAlgorithm(algorithms.TokenBucket))`",
	implRedisRate:   "`redis_rate.NewLimiter(rdb).Allow`",
}

// writeDegradedTable writes the markdown table of the degraded-mode runs,
// or nothing when there are none.
func writeDegradedTable(w io.Writer, rs []degradedRun) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "| limiter | fault | instances | demand | requests | admitted | ideal | deviation % | errors | fallback decisions | busiest 1 s (allowance) | fault + 1 s: admitted / ideal | while down: admitted (bound) | slowest call | Redis decides again after |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		down := "–"
		if r.f.kind == faultKill {
			down = fmt.Sprintf("%s (%s)", fmtInt(int64(r.duringAdmitted)), fmtInt(int64(r.outageBound())))
		}
		fmt.Fprintf(w, "| %v | %s | %d | %g× (%s/s) | %s | %s | %s | %+.2f | %s | %s | %s (%s) | %s / %s | %s | %s | %s |\n",
			r.impl, r.f.label(), r.f.instances(), r.f.demand, fmtRate(r.f.offered()),
			fmtInt(int64(len(r.calls))), fmtInt(int64(r.admitted)), fmtInt(int64(r.ideal)), r.deviationPct(),
			fmtInt(int64(r.errs)), fmtInt(int64(r.fallbacks)), fmtInt(int64(r.busiest)), fmtInt(int64(allowance())),
			fmtInt(int64(r.windowAdmitted)), fmtInt(int64(r.windowIdeal)), down, fmtMillis(r.slowest), r.resumedLabel())
	}
}

// fmtMillis formats d in milliseconds: "251 ms", "1.42 ms".
func fmtMillis(d time.Duration) string { return fmtSig(float64(d.Microseconds())/1e3) + " ms" }

// resumedLabel formats resumed: "12.3 ms" or "never".
func (r degradedRun) resumedLabel() string {
	if r.resumed < 0 {
		return "never"
	}
	return fmtMillis(r.resumed)
}

// writeDegraded writes the degraded-mode section of docs/benchmarks.md.
func (rp *report) writeDegraded(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	ds := rp.degraded
	p("## Degraded mode: Redis paused and killed")
	p("")
	if len(ds.runs) == 0 {
		why := "not run"
		if ds.skipped != "" {
			why = ds.skipped
		}
		p("Not measured in this run: %s.", why)
		p("")
		return
	}
	faults := faultsFor(rp.short)
	p("What each limiter does when Redis misbehaves, with its **default options**: the hot key at a limit of %s, paced open-loop demand from several instances, "+
		"and partway through each run the run's own redis-server is frozen or killed. One chart per limiter below shows its admissions per %s against the ideal; the table has the totals.",
		fmtLimit(degradedLimit), fmtDur(degradedBin))
	p("")
	p("- **Limiters**, each with its defaults, only a keyspace and a logger that discards set (not the %s call timeout of the rows above):", fmtDur(callTimeout))
	p("  - **lease**: %s. Failure policy `FailLocal`; a refill is bounded by `lease.DefaultRefillTimeout` (%s) and a caller waits for one at most `lease.DefaultMaxWait` (%s), "+
		"after which it is decided by a fallback that starts empty, admits this instance's learned share of the limit and is charged to Redis when Redis answers again.",
		implCall[implLease], fmtDur(lease.DefaultRefillTimeout), fmtDur(lease.DefaultMaxWait))
	p("  - **tokenbucket**: %s, one script per request. Failure policy `FailClosed` (a denial with `Source == SourceFallback` and an error matching `ratelimit.ErrStore`, so each such call is in both the errors and the fallback columns); "+
		"each call is bounded by `algorithms.DefaultTimeout` (%s); the circuit breaker is on.", implCall[implTokenBucket], fmtDur(algorithms.DefaultTimeout))
	p("  - **redis_rate**: %s, one GCRA script per request. It has no failure policy and no timeout of its own: a call waits as long as the client lets it, and a failed call is an error.", implCall[implRedisRate])
	p("- **Instances**: each its own go-redis client with `ContextTimeoutEnabled` and go-redis's defaults otherwise (a pool of 10 × GOMAXPROCS connections, 3 s read timeout, up to 3 retries) and its own limiter. The instances share the key.")
	p("- **Demand**: every caller sends one `Allow` on the hot key at a fixed interval, open loop: a late call does not push the next ones back, so after a stall the caller sends what fell due meanwhile. The callers of an instance are staggered over one interval; no call has a deadline of its own within the run.")
	for _, f := range faults {
		p("- **%s**: %s; %s: %s callers (%s per instance) at %s/s each; %s of load. %s.",
			f.label(), f.describe(), f.workloadLabel(), fmtInt(int64(f.callers())), joinInts(f.goroutines), fmtSig(f.offered()/float64(f.callers())),
			fmtDur(f.run), faultHow(f.kind))
	}
	p("- Every run gets a fresh redis-server %s of its own, started on a free 127.0.0.1 port (persistence off); the server of the rows above, or one given with `-redis`, is never touched.", redisVersionNote(rp.redisVersion, rp.ownServer))
	p("- **ideal**: `algorithms.TokenBucketModel`, the module's reference model of its token bucket script, replayed over every request of all instances in order of send time, starting full. "+
		"Requests that got an error count: each is a request that arrived. **deviation** = (admitted − ideal) ÷ ideal. "+
		"**busiest 1 s**: the most admissions in any 1 s window of send times, against the allowance burst + rate = %s, the most an exact bucket admits in a second.", fmtInt(int64(allowance())))
	p("- **errors**: calls that returned an error. **fallback decisions**: decisions with `Source == SourceFallback`, made by the failure policy without Redis. " +
		"**fault + 1 s**: the requests sent from the signal (or the kill) until 1 s after the server answered again (a pause: SIGCONT; a kill: the restarted server answers PING): whether a pause adds admissions or only moves them. " +
		"**while down** (kills only): the requests sent while the server was down, against the bound 1.2 × rate × outage + burst. " +
		"**slowest call**: the longest any one `Allow` took. " +
		"**Redis decides again after**: from the moment the server answered again to the first request sent afterwards that was decided without the failure policy and without an error.")
	p("")
	writeDegradedTable(b, ds.runs)
	p("")
	for _, im := range impls {
		if len(runsOf(ds.runs, im)) == 0 {
			continue
		}
		p("![%s](%s)", degradedChartTitle(im), path.Join("img", degradedChartFile(im)))
		p("")
	}
	p("In each chart the grey band is the fault, the dashed black line the ideal's admissions per %s, the solid line the limiter's, and the dotted line the part of them its fallback admitted (only the lease's fallback admits). "+
		"The start of every run is off the scale: both the limiter and the ideal spend the full burst of %s there, in the first %s at 10× and %s at 4×.",
		fmtDur(degradedBin), fmtInt(int64(degradedLimit.Burst)), fmtDur(burstSpan(10)), fmtDur(burstSpan(4)))
	p("")
	rp.writeDegradedReading(b)
}

// faultHow says how a fault is made.
func faultHow(k faultKind) string {
	if k == faultKill {
		return "The server is killed with SIGKILL and, after the outage, started again empty on the same port (`redistest.Server.Kill`, `Restart`)"
	}
	return "The server process gets SIGSTOP and, after the pause, SIGCONT (`redistest.Server.Freeze`): connections stay open and the kernel buffers the requests, but nothing is answered meanwhile"
}

// redisVersionNote names the server version when the run started its own.
func redisVersionNote(version string, own bool) string {
	if own {
		return "(redis-server " + version + ")"
	}
	return "(the redis-server binary on PATH)"
}

// joinInts formats 13, 10, 6, 3 as "13/10/6/3".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, "/")
}

// runsOf returns the runs of im, in run order.
func runsOf(rs []degradedRun, im impl) []degradedRun {
	var out []degradedRun
	for _, r := range rs {
		if r.impl == im {
			out = append(out, r)
		}
	}
	return out
}

// degradedChartTitle is the alt text of im's chart.
func degradedChartTitle(im impl) string {
	return fmt.Sprintf("%v, default options: admitted per %s against the ideal through each fault; hot key, limit %s",
		im, fmtDur(degradedBin), fmtLimit(degradedLimit))
}

// writeDegradedReading sums the section up per limiter with the run's
// figures.
func (rp *report) writeDegradedReading(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	how := map[impl]string{
		implLease: fmt.Sprintf("A caller whose refill takes longer than the max wait (%s), or that finds the breaker open, is decided by the `FailLocal` fallback at its instance's learned share; "+
			"what the fallbacks admitted is charged to Redis when it answers again, so that a pause moves admissions in time rather than adding to them.", fmtDur(lease.DefaultMaxWait)),
		implTokenBucket: fmt.Sprintf("A call that Redis does not answer within %s is a store failure, which `FailClosed` denies with an error; "+
			"after enough failures the breaker opens and denies at once, without calling Redis, until a probe succeeds.", fmtDur(algorithms.DefaultTimeout)),
		implRedisRate: "It has no timeout of its own, so its calls wait out a pause and are decided when Redis answers; while Redis is down a call returns an error once the client's dial attempts and retries are spent, and callers blocked in them send less meanwhile. It never decides without Redis.",
	}
	p("**Reading the degraded-mode results.** A restarted Redis has lost the bucket: its first answers come from a full one, up to the burst (%s) more than the ideal, which forgets nothing. "+
		"Figures per limiter (pauses at %s, the kill at %s):",
		fmtInt(int64(degradedLimit.Burst)), faultsFor(rp.short)[0].workloadLabel(), killLabel(rp.short))
	p("")
	for _, im := range impls {
		rs := runsOf(rp.degraded.runs, im)
		if len(rs) == 0 {
			continue
		}
		var parts []string
		for _, r := range rs {
			s := fmt.Sprintf("%s: %s admitted against an ideal of %s (%+.2f%%), %s errors, %s fallback decisions, busiest second %s, slowest call %s",
				r.f.label(), fmtInt(int64(r.admitted)), fmtInt(int64(r.ideal)), r.deviationPct(),
				fmtInt(int64(r.errs)), fmtInt(int64(r.fallbacks)), fmtInt(int64(r.busiest)), fmtMillis(r.slowest))
			if r.f.kind == faultKill {
				s += fmt.Sprintf("; while Redis was down (%s s) %s admitted (ideal %s, bound %s), in the %s s after the restart %s (ideal %s)",
					fmtSig((r.to - r.from).Seconds()), fmtInt(int64(r.duringAdmitted)), fmtInt(int64(r.duringIdeal)), fmtInt(int64(r.outageBound())),
					fmtSig((r.f.run - r.to).Seconds()), fmtInt(int64(r.afterAdmitted)), fmtInt(int64(r.afterIdeal)))
				if im == implLease && r.fallbacks > 0 && float64(r.afterAdmitted) < 0.9*float64(r.afterIdeal) {
					s += ": the fallbacks' admissions were charged to the restarted Redis, whose bucket had started again full, and put it into debt"
				}
			}
			parts = append(parts, s)
		}
		p("- **%v**: %s. %s", im, strings.Join(parts, ". "), how[im])
	}
	p("")
}

// killLabel returns the workload of the kill run.
func killLabel(short bool) string {
	for _, f := range faultsFor(short) {
		if f.kind == faultKill {
			return f.workloadLabel()
		}
	}
	return "–"
}

// burstSpan returns how long demand at the given multiple of the rate
// takes to spend a full burst.
func burstSpan(demand float64) time.Duration {
	return time.Duration(float64(degradedLimit.Burst) / (demand * degradedLimit.PerSecondRate()) * float64(time.Second))
}

// writeDegradedCharts writes one chart per limiter into dir: a panel per
// fault of the admissions per degradedBin against the ideal.
func writeDegradedCharts(dir string, rs []degradedRun) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, im := range impls {
		mine := runsOf(rs, im)
		if len(mine) == 0 {
			continue
		}
		file := filepath.Join(dir, degradedChartFile(im))
		if err := degradedChart(file, im, mine); err != nil {
			return fmt.Errorf("%s: %w", degradedChartFile(im), err)
		}
	}
	return nil
}

// degradedChart writes the panels of im's runs, one above the other.
func degradedChart(file string, im impl, rs []degradedRun) error {
	col := make([][]*plot.Plot, len(rs))
	for i, r := range rs {
		p, err := degradedPanel(im, r)
		if err != nil {
			return err
		}
		col[i] = []*plot.Plot{p}
	}
	img := vgimg.New(11*vg.Inch, vg.Length(len(rs))*3*vg.Inch)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(rs), Cols: 1, PadY: vg.Points(18), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	canvases := plot.Align(col, t, dc)
	for i := range col {
		col[i][0].Draw(canvases[i][0])
	}
	return savePNG(file, img)
}

// degradedPanel plots one run: the fault as a grey band, the ideal, the
// admissions and the fallback's share of them, per degradedBin.
func degradedPanel(im impl, r degradedRun) (*plot.Plot, error) {
	admitted, byFallback, ideal := r.bins()
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%v: %s; %s, limit %s", im, r.f.describe(), r.f.workloadLabel(), fmtLimit(degradedLimit))
	p.X.Label.Text = "seconds since the load began"
	p.Y.Label.Text = "admitted per " + fmtDur(degradedBin)
	p.Add(plotter.NewGrid())
	// The first bins hold the full burst; scale to the rest.
	skip := int((burstSpan(r.f.demand)+degradedBin-1)/degradedBin) + 1
	top := 1.0
	for i := skip; i < len(admitted); i++ {
		top = math.Max(top, math.Max(admitted[i], ideal[i]))
	}
	top *= 1.35 // room for the legend

	band, err := plotter.NewPolygon(plotter.XYs{{X: r.from.Seconds(), Y: 0}, {X: r.to.Seconds(), Y: 0}, {X: r.to.Seconds(), Y: top}, {X: r.from.Seconds(), Y: top}})
	if err != nil {
		return nil, err
	}
	band.Color = color.Gray{Y: 0xdd}
	band.LineStyle.Width = 0
	p.Add(band)
	p.Legend.Add(r.f.label(), band)

	step := func(vals []float64) plotter.XYs {
		xy := make(plotter.XYs, len(vals)+1)
		for i, v := range vals {
			xy[i] = plotter.XY{X: float64(i) * degradedBin.Seconds(), Y: v}
		}
		xy[len(vals)] = plotter.XY{X: r.f.run.Seconds(), Y: vals[len(vals)-1]}
		return xy
	}
	type series struct {
		name  string
		vals  []float64
		color color.Color
		width vg.Length
		dash  []vg.Length
	}
	all := []series{
		{"ideal (exact token bucket)", ideal, color.Black, vg.Points(1.2), []vg.Length{vg.Points(5), vg.Points(3)}},
		{fmt.Sprintf("%v admitted", im), admitted, implColors[im], vg.Points(1.8), nil},
	}
	if sum(byFallback) > 0 {
		all = append(all, series{"of which by the fallback", byFallback, implColors[im], vg.Points(1.2), []vg.Length{vg.Points(1.5), vg.Points(2)}})
	}
	for _, s := range all {
		l, err := plotter.NewLine(step(s.vals))
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.Color = s.color
		l.Width = s.width
		l.Dashes = s.dash
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top = true
	// Add widened the axes to the data; set them last.
	p.Y.Min, p.Y.Max = 0, top
	p.X.Min, p.X.Max = 0, r.f.run.Seconds()
	p.X.Tick.Marker = stepTicks{step: 1, minor: 0.5}
	p.Y.Tick.Marker = plainTicks{}
	return p, nil
}

// stepTicks are labelled ticks every step and unlabelled ones every minor.
type stepTicks struct{ step, minor float64 }

// Ticks implements plot.Ticker.
func (s stepTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for i := math.Ceil(lo / s.minor); i*s.minor <= hi; i++ {
		v := i * s.minor
		t := plot.Tick{Value: v}
		if math.Mod(v, s.step) == 0 {
			t.Label = strconv.FormatFloat(v, 'f', -1, 64)
		}
		ts = append(ts, t)
	}
	return ts
}

// plainTicks are gonum's default ticks labelled without trailing zeros.
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// sum returns the sum of vs.
func sum(vs []float64) float64 {
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}
