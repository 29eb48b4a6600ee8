// Command demo shows what the rate limiter does and what leasing buys.
//
// It simulates several instances of a service (-instances, default 3),
// each with its own Redis client and limiters, that share the limits of a
// free and a pro tier (from cmd/demo/tiers.yaml, embedded; -config for
// another file) through one Redis: an embedded miniredis, or the server
// or Cluster given with -redis. Some free clients ask for 5 to 10 times
// their limit, a crowd of free clients goes over the tier-wide limit, and
// pro clients stay under theirs.
//
// It runs that workload with leased limits (lease.New: most checks are
// answered from tokens leased to the instance) and then with per-request
// limits (tiers.Direct: one Lua script in Redis per limit and check),
// prints a live view each second, and ends with a summary per tier and
// mode: admissions against an ideal single token bucket, false denials,
// Redis calls per 1,000 decisions and decision latency.
//
// With -http it serves a small API behind the httplimit middleware
// instead, keyed by the X-API-Key header, with its Redis keys under
// -keyspace, so that several processes can share the limits.
//
// Usage:
//
//	go run ./cmd/demo [-mode both|lease|direct] [-duration 10s] [-instances 3]
//	    [-config tiers.yaml] [-redis 127.0.0.1:6379] [-http 127.0.0.1:8080]
//	    [-keyspace http] [-timeout 250ms] [-metrics off|stdout|prometheus]
//
// Two processes, one Redis, one limit: start two -http servers with the
// same -redis and -keyspace; a client's requests to either count against
// the same limits.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit code: 0, 1 for a failure,
// 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "demo: %v\nRun 'go run ./cmd/demo -h' for the flags.\n", err)
		return 2
	}
	quietRedis.Do(func() { redis.SetLogger(quietLogger{}) })
	if err := start(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	return 0
}

// quietRedis silences go-redis's logger once: run may run concurrently
// (two demo servers in one test).
var quietRedis sync.Once

func start(ctx context.Context, o options, stdout io.Writer) error {
	cfg, cfgName, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	st, err := openStore(o.redis, o.allowRemote)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := newMetrics(o, stdout)
	if err != nil {
		return err
	}
	defer m.shutdown(context.Background())
	if o.http != "" {
		return serveHTTP(ctx, o, cfg, cfgName, st, m, stdout)
	}
	return simulate(ctx, o, cfg, cfgName, st, m, stdout)
}

// simulate runs the workload in each mode and prints the summary.
func simulate(ctx context.Context, o options, cfg tiers.Config, cfgName string, st *store, m *metrics, w io.Writer) error {
	// The limiters log through slog.Default, taken when they are made.
	logs := &logCounter{}
	defer logs.install()()

	p := makePlan(cfg, o.duration)
	printHeader(w, o, cfg, cfgName, st, p)
	run := runID()
	var rs []modeResult
	for _, mode := range o.modes() {
		if ctx.Err() != nil {
			break
		}
		r, err := runMode(ctx, mode, run, o, cfg, st, m, p, w)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	printSummary(w, p, rs, o.instances, st.embedded())
	io.WriteString(w, logs.String())
	return nil
}

var modeLines = map[string]string{
	modeLease:  "-mode lease: each instance serves checks from tokens it leases from Redis in batches",
	modeDirect: "-mode direct: each check runs one Lua script in Redis per limit",
}

// runMode runs the plan once in mode, with fresh instances and a Redis
// namespace of its own, and summarizes it.
func runMode(ctx context.Context, mode, run string, o options, cfg tiers.Config, st *store, m *metrics,
	p plan, w io.Writer) (modeResult, error) {
	prefix := "demo:" + run + ":" + mode[:1] + ":"
	base, err := ratelimit.NewKeyspace(prefix)
	if err != nil {
		return modeResult{}, err
	}
	if mode == modeDirect {
		cfg = withoutLease(cfg)
	}
	counter := newCallCounter(prefix, p.tiers)
	lims := make([]*tiers.Limiter, 0, o.instances)
	defer func() {
		// Closing returns unspent leased tokens to Redis: those calls count too.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, l := range lims {
			l.Close(cctx)
		}
	}()
	for i := range o.instances {
		rdb, err := st.client(ctx, counter, m.hook())
		if err != nil {
			return modeResult{}, err
		}
		defer rdb.Close()
		l, err := newLimiter(rdb, cfg, base, o, m, i+1)
		if err != nil {
			return modeResult{}, err
		}
		lims = append(lims, l)
	}

	fmt.Fprintf(w, "\n%s\n", modeLines[mode])
	t := newTally(len(p.tiers))
	v := newView(w, p.tiers, t, &counter.total)
	v.header()
	done := make(chan struct{})
	viewDone := make(chan struct{})
	go func() { v.run(done); close(viewDone) }()
	started := time.Now()
	evs := runLoad(ctx, p, lims, o.duration, started, t)
	elapsed := min(time.Since(started), o.duration)
	close(done)
	<-viewDone
	m.flush("-mode " + mode)

	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, l := range lims {
		l.Close(cctx)
	}
	lims = nil
	calls := make([]int64, len(p.tiers)+1)
	for i := range calls {
		calls[i] = counter.tierCalls(i)
	}
	return summarize(mode, elapsed, p, evs, calls, counter.total.Load()), nil
}

// printHeader says what is simulated: the instances, Redis, the plans and
// the workload.
func printHeader(w io.Writer, o options, cfg tiers.Config, cfgName string, st *store, p plan) {
	var b strings.Builder
	fmt.Fprintf(&b, "ratelimit demo: %d instances of a service share rate limits through one Redis.\n", o.instances)
	fmt.Fprintf(&b, "Redis:    %v\n", st)
	printPlans(&b, cfg, cfgName)
	fmt.Fprintf(&b, "Workload: %v per mode, each client's requests spread evenly over the instances\n", o.duration)
	last := "\x00"
	for _, l := range p.lines {
		name := l[0]
		if name == last {
			name = ""
		}
		last = l[0]
		fmt.Fprintf(&b, "  %-7s %s\n", clip(name, 7), l[1])
	}
	if !anyLease(cfg) && o.mode != modeDirect {
		b.WriteString("Note: no limit in the config sets lease: true, so -mode lease runs like -mode direct.\n")
	}
	b.WriteString(viewLegend)
	io.WriteString(w, b.String())
}

// printPlans writes the config's tiers and how clients get them.
func printPlans(b *strings.Builder, cfg tiers.Config, cfgName string) {
	fmt.Fprintf(b, "Plans:    %s", cfgName)
	if cfg.DefaultTier != "" {
		fmt.Fprintf(b, "; clients it does not list are %s", cfg.DefaultTier)
	}
	b.WriteString("\n")
	for _, t := range cfg.Tiers {
		fmt.Fprintf(b, "  %-7s %s\n", clip(t.Name, 7), describeTier(t))
	}
}

// runID returns a short random name, so that runs against one Redis
// server keep their keys apart.
func runID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [5]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}
