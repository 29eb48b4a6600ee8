package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"

	"github.com/distributedratelimiter/ratelimit/lease"
)

// figures formats the measured values of one row for the reading. The
// zero value stands for a row that did not run.
type figures struct{ r result }

// Rate is decisions per second.
func (f figures) Rate() string { return fmtRate(f.r.throughput()) }

// P50 and P99 are latencies in µs.
func (f figures) P50() string { return fmtMicros(f.r.p50) }

// P99 is the 99th percentile latency in µs.
func (f figures) P99() string { return fmtMicros(f.r.p99) }

// Calls is Redis calls per 1,000 decisions.
func (f figures) Calls() string { return fmtSig(f.r.callsPer1k()) }

// Allocs is allocations per decision.
func (f figures) Allocs() string { return fmtSig(f.r.allocsPerOp()) }

// PerKeyRate is the requests per second of each key at the instance.
func (f figures) PerKeyRate() string { return fmtSig(f.r.perKeyRate()) }

// Allowed is the requests admitted.
func (f figures) Allowed() string { return fmtInt(f.r.allowed) }

// Ideal is what an exact token bucket admits for the same arrivals.
func (f figures) Ideal() string { return fmtInt(int64(f.r.ideal() + 0.5)) }

// Over is the overadmission in percent.
func (f figures) Over() string { return pct(f.r.overadmitPct()) }

// FalseDeny is the false denials in percent.
func (f figures) FalseDeny() string { return pct(f.r.falseDenyPct()) }

// leaseBudget is lease.DefaultAccuracyBudget in percent: "5%".
func leaseBudget() string {
	return strconv.FormatFloat(100*lease.DefaultAccuracyBudget, 'g', -1, 64) + "%"
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "%" }

// trio is one workload's rows of the three implementations.
type trio struct{ Lease, TokenBucket, RedisRate figures }

// reading is everything "Reading the results" quotes: measured figures,
// the run's configuration and the lease's defaults that explain them.
type reading struct {
	Hot   trio    // 1 instance, 8 goroutines, the hot key
	Hot4  figures // the lease at 4 instances, 8 goroutines, the hot key
	Wide  trio    // 1 instance, 8 goroutines, 10,000 keys
	Over  trio    // 4 instances at 10× the accuracy limit
	Over1 figures // the lease at 1 instance, 10×
	Under figures // the lease at 4 instances, 0.8×

	LeaseVsTB, LeaseVsRR, RRVsTB string // throughput ratios on the hot key
	RRComparedToTB               string // "faster than", "slower than"...
	WideVersus                   string // how the lease compares on 10,000 keys

	PoolSize    int    // go-redis connections per client
	CallTimeout string // the bound on each Redis call of the module's limiters

	Horizon string // lease.DefaultHorizon
	Budget  string // lease.DefaultAccuracyBudget, in percent of the burst

	WorstDev  string // the per-request limiters' largest deviation from the ideal
	WorstImpl impl
	WorstRow  string

	Sweep    string // the key-count sweep table, empty if it did not run
	Failures string // the paragraph on errors and fallbacks

	LoadStart, LoadEnd string
}

// newReading picks the reading's figures out of rp.
func (rp *report) newReading() reading {
	rs := rp.results
	get := func(im impl, w workload) figures { r, _ := find(rs, im, w); return figures{r} }
	three := func(w workload) trio {
		return trio{get(implLease, w), get(implTokenBucket, w), get(implRedisRate, w)}
	}
	wide := workload{instances: 1, goroutines: 8, keys: 10_000}
	rd := reading{
		Hot:   three(summaryHot),
		Hot4:  get(implLease, workload{instances: 4, goroutines: 8, keys: 1}),
		Wide:  three(wide),
		Over:  three(summaryOver),
		Over1: get(implLease, workload{instances: 1, goroutines: accuracyGoroutines, keys: 1, demand: 10}),
		Under: get(implLease, summaryUnder),

		PoolSize:    10 * rp.m.gomaxprocs,
		CallTimeout: fmtDur(callTimeout),

		Horizon: fmtDur(lease.DefaultHorizon),
		Budget:  leaseBudget(),

		LoadStart: rp.loadStart,
		LoadEnd:   rp.loadEnd,
	}
	h, w := rd.Hot, rd.Wide
	rd.LeaseVsTB = fmtSig(ratio(h.Lease.r.throughput(), h.TokenBucket.r.throughput()))
	rd.LeaseVsRR = fmtSig(ratio(h.Lease.r.throughput(), h.RedisRate.r.throughput()))
	rd.RRVsTB = fmtSig(ratio(h.RedisRate.r.throughput(), h.TokenBucket.r.throughput()))
	rd.RRComparedToTB = compareWord(h.RedisRate.r.throughput(), h.TokenBucket.r.throughput())
	rd.WideVersus = versus(compareWord(w.Lease.r.throughput(), w.TokenBucket.r.throughput()),
		compareWord(w.Lease.r.throughput(), w.RedisRate.r.throughput()))

	var worst struct {
		r   result
		dev float64
	}
	for _, r := range accuracyRows(rs) {
		if d := math.Max(r.overadmitPct(), r.falseDenyPct()); r.impl != implLease && d >= worst.dev {
			worst.r, worst.dev = r, d
		}
	}
	rd.WorstDev, rd.WorstImpl, rd.WorstRow = pct(worst.dev), worst.r.impl, worst.r.w.short()

	if len(sweepRows(rs)) > 2 {
		var b strings.Builder
		writeSweepTable(&b, rs)
		rd.Sweep = b.String()
	}
	var b bytes.Buffer
	rp.writeFailures(&b)
	rd.Failures = b.String()
	return rd
}

// writeReading explains the results with the run's own figures.
func (rp *report) writeReading(b *bytes.Buffer) {
	if err := readingTemplate.Execute(b, rp.newReading()); err != nil {
		panic(fmt.Sprintf("benchmarks: reading template: %v", err)) // a bug in the template
	}
}

// readingTemplate is "Reading the results". Each paragraph is one line of
// the Markdown file; the template's line breaks inside a paragraph are
// joined with spaces by oneLine.
var readingTemplate = template.Must(template.New("reading").Parse(oneLine(`## Reading the results

**Hot key.** At 1 instance, 8 goroutines, the lease made {{.Hot.Lease.Rate}} decisions/s against {{.Hot.TokenBucket.Rate}} for the per-request token bucket and {{.Hot.RedisRate.Rate}} for redis_rate: {{.LeaseVsTB}}× and {{.LeaseVsRR}}×.
Almost every lease decision is one compare-and-swap on an in-process counter: p50 {{.Hot.Lease.P50}} µs and p99 {{.Hot.Lease.P99}} µs, the cost of timing included,
against p50 {{.Hot.TokenBucket.P50}} µs / p99 {{.Hot.TokenBucket.P99}} µs for the token bucket, whose every call is a round trip to Redis and a Lua script.
The lease went to Redis {{.Hot.Lease.Calls}} times per 1,000 decisions (the per-request limiters: 1,000, by construction and by count) and allocated {{.Hot.Lease.Allocs}} times per decision (the token bucket {{.Hot.TokenBucket.Allocs}}, redis_rate {{.Hot.RedisRate.Allocs}}).
With 4 instances sharing the key the lease still made {{.Hot4.Rate}} decisions/s in total at {{.Hot4.Calls}} Redis calls per 1,000: each instance leases its own batches.

The per-request limiters' throughput is bounded by Redis round trips: on two cores shared by redis-server and the client,
more goroutines add throughput slowly and latency quickly (at 64 goroutines per instance most of a call's time is spent waiting for one of the pool's {{.PoolSize}} connections and for the single-threaded server).
On this row redis_rate is {{.RRComparedToTB}} the token bucket ({{.RRVsTB}}×). Two differences plausibly account for a gap, though this run does not separate them:
redis_rate's script reads and writes one string key (GET, SET), the token bucket's a hash (HMGET, HSET, PEXPIRE);
and the token bucket limiter bounds each call with its own deadline (` + "`algorithms.WithTimeout`" + `, {{.CallTimeout}} here), which costs a context and a timer per call, while redis_rate's calls are bounded only by the client's timeouts.

**10,000 keys.** Spread uniformly over 10,000 keys, each key saw about {{.Wide.Lease.PerKeyRate}} requests per second at the instance (1 instance, 8 goroutines).
The lease sizes a key's batch to that key's own demand: while its Redis bucket is far from empty, as here, up to a second of it (at most half of what the bucket holds),
else one span ({{.Horizon}}, or four Redis round trips if longer), capped at {{.Budget}} of the burst.
A new key's demand estimate starts at zero, so it leases one token per request, on the caller's goroutine and with no low watermark to refill ahead of time, exactly like a per-request limiter plus the lease's own bookkeeping (a table entry per key),
until its estimate says it spends two tokens a second, or it has seen 16 requests.
Measured: {{.Wide.Lease.Calls}} Redis calls per 1,000 decisions, {{.Wide.Lease.Rate}} decisions/s (token bucket {{.Wide.TokenBucket.Rate}}, redis_rate {{.Wide.RedisRate.Rate}}), p99 {{.Wide.Lease.P99}} µs (token bucket {{.Wide.TokenBucket.P99}} µs) and {{.Wide.Lease.Allocs}} allocations per decision (token bucket {{.Wide.TokenBucket.Allocs}}).
On such a key space the lease is {{.WideVersus}}: it pays off on keys that are hot at an instance, not on a wide, flat key space.

{{if .Sweep}}**Where leasing stops paying.** The lease alone, 1 instance, 8 goroutines, the same closed loop over more and more keys:

{{.Sweep}}
Redis calls per 1,000 decisions climb toward 1,000 as the requests per key at the instance fall: over a run of a few seconds a key that sees few requests spends most of them
in its first, one-token leases (above).
In a closed loop the demand per key depends on how fast the limiter answers, so between those key counts a run can settle in either of two states:
one-token leases keep decisions slow and the demand per key low, while large leases keep decisions fast and the demand per key high.
Runs on this machine have landed in either state at 1,000 keys, from about 40 thousand to a few million decisions/s; an open-loop service with a fixed demand per key sees one state, the one its demand picks.

{{end}}**Accuracy.** At 10× the limit from 4 instances the lease admitted {{.Over.Lease.Allowed}} requests against an ideal of {{.Over.Lease.Ideal}}: {{.Over.Lease.Over}} overadmitted and {{.Over.Lease.FalseDeny}} falsely denied
(token bucket {{.Over.TokenBucket.Over}} / {{.Over.TokenBucket.FalseDeny}}, redis_rate {{.Over.RedisRate.Over}} / {{.Over.RedisRate.FalseDeny}}). At 0.8× it falsely denied {{.Under.FalseDeny}}.
The per-request limiters are exact by construction, so their deviations (up to {{.WorstDev}} here, {{.WorstImpl}} at {{.WorstRow}}) show the resolution of the measurement itself: arrivals are timed on the client,
halfway through each call, while Redis decides the calls in the order they reach it and refills the bucket on its own clock; when a stalled machine holds calls back, the two orders differ most.
The lease can also fall short by the tokens it holds unspent when the phase ends (up to a second of an instance's demand while the bucket is far from empty, at most {{.Budget}} of the burst per instance once it is under half full)
and by requests denied at one instance while another still holds leased tokens. It serves only tokens Redis granted and none more than the lease TTL after the grant,
so over any span T all instances together admit at most burst + rate × (T + TTL), plus what they held when the span began (nothing here: every row starts on fresh keys); [accuracy.md](accuracy.md) has the argument.
Over the limit, the lease remembers each Redis denial until tokens are due, so it went to Redis only {{.Over1.Calls}} times per 1,000 decisions at 1 instance and {{.Over.Lease.Calls}} at 4, against about 1,000 for the per-request limiters,
with p50 {{.Over.Lease.P50}} µs against {{.Over.TokenBucket.P50}} µs for the token bucket.

{{.Failures}}**Noise.** The load average was {{.LoadStart}} at the start and {{.LoadEnd}} at the end of the run; other engineers' test suites ran on the same two cores.
Rows that ran while they did are slower and have longer tails, and rows run minutes apart are not strictly comparable.
The implementations of one workload run back to back, so their ratios are more trustworthy than any absolute figure.

`)))

// oneLine joins the lines of each paragraph of s, which the source wraps
// for reading, into one line: a line break between two lines of text
// continues the paragraph, unless one of them is blank, a heading, or
// only a template action (such as a table's).
func oneLine(s string) string {
	alone := func(l string) bool {
		return l == "" || strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "{{") && strings.HasSuffix(l, "}}")
	}
	lines := strings.Split(s, "\n")
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(l)
		if i == len(lines)-1 {
			break
		}
		if !alone(l) && !alone(lines[i+1]) {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte('\n')
	}
	return b.String()
}
