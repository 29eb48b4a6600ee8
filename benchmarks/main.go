// Command benchmarks runs the leasing limiter, the per-request token bucket
// and go-redis/redis_rate side by side against one redis-server, writes
// docs/benchmarks.md with charts in docs/img/, and ends with one summary
// line. Run it from the module root:
//
//	go run ./benchmarks          # full run, a few minutes; writes docs/
//	go run ./benchmarks -short   # under a minute; prints, writes nothing
//	go run ./benchmarks -h
//
// It starts its own redis-server on a free loopback port unless -redis
// names one; only loopback addresses are accepted. compare_test.go has the
// same comparison as testing.B benchmarks for benchstat.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the command and returns its exit status: 0, 1 when the
// run failed, 2 for bad flags.
func realMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchmarks:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	line, err := run(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "benchmarks:", err)
		return 1
	}
	// The summary is the last line of the output: the server is already
	// stopped and nothing prints after it.
	fmt.Fprintln(stdout, line)
	return 0
}

// run measures every row and writes the report; it returns the summary
// line.
func run(ctx context.Context, o options, stdout, stderr io.Writer) (string, error) {
	began := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	m := probeMachine()

	addr, ownServer := o.redis, o.redis == ""
	if ownServer {
		dir, err := os.MkdirTemp("", "ratelimit-bench-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		p, err := redistest.StartProcess(dir)
		if err != nil {
			return "", err
		}
		defer p.Stop()
		addr = p.Addr()
		logf("started redis-server on %s", addr)
	}
	version, err := redisVersion(ctx, addr)
	if err != nil {
		return "", err
	}
	rep := report{
		m: m, redisVersion: version, ownServer: ownServer, short: o.short,
		ph: phasesFor(o.short), date: began.UTC(), loadStart: loadAvg(),
	}
	rn := &runner{addr: addr, prefix: fmt.Sprintf("bench%d.%d:", os.Getpid(), began.Unix()), ph: rep.ph}

	jobs := plan(o.short)
	for _, j := range jobs {
		r, err := rn.run(ctx, j.im, j.w)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if err != nil {
			return "", err
		}
		rep.results = append(rep.results, r)
		logf("[%2d/%d] %s", len(rep.results), len(jobs), progressLine(r))
	}
	rep.degraded, err = runDegradedSection(ctx, o.short, rn.prefix, logf)
	if err != nil {
		return "", err
	}
	rep.loadEnd = loadAvg()
	rep.took = time.Since(began)
	sum, err := summarize(rep.results)
	if err != nil {
		return "", err
	}
	rep.sum = sum

	writeThroughputTable(stdout, rep.results)
	fmt.Fprintln(stdout)
	writeAccuracyTable(stdout, rep.results)
	fmt.Fprintln(stdout)
	writeDegradedTable(stdout, rep.degraded.runs)
	fmt.Fprintln(stdout)
	if o.out != "" {
		if err := writeCharts(filepath.Join(o.out, "img"), rep.results); err != nil {
			return "", fmt.Errorf("charts: %w", err)
		}
		if err := writeDegradedCharts(filepath.Join(o.out, "img"), rep.degraded.runs); err != nil {
			return "", fmt.Errorf("charts: %w", err)
		}
		md := filepath.Join(o.out, "benchmarks.md")
		if err := writeFile(md, rep.markdown); err != nil {
			return "", err
		}
		logf("wrote %s and %s", md, filepath.Join(o.out, "img", "*.png"))
	}
	return sum.String(), nil
}

// progressLine is the log line of one measured row.
func progressLine(r result) string {
	s := fmt.Sprintf("%-11v %-13s %12s decisions/s  p50 %7s µs  p99 %7s µs  calls/1k %7s  allocs/op %5s",
		r.impl, r.w.short(), fmtInt(int64(r.throughput()+0.5)), fmtMicros(r.p50), fmtMicros(r.p99),
		fmtSig(r.callsPer1k()), fmtSig(r.allocsPerOp()))
	if r.w.accuracy() {
		s += fmt.Sprintf("  overadmit %.2f%%  false-deny %.2f%%", r.overadmitPct(), r.falseDenyPct())
	}
	if r.errs > 0 {
		s += fmt.Sprintf("  errors %d (first: %v)", r.errs, r.firstErr)
	}
	if r.fallbacks > 0 {
		s += fmt.Sprintf("  fallback decisions %d", r.fallbacks)
	}
	return s
}

// writeFile writes the output of write to path.
func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
