// Command demo shows several instances of a service sharing one rate limit
// through Redis.
//
// It starts an embedded Redis (miniredis), or uses a real server given with
// -redis, and runs three simulated instances, each with its own Redis
// client and limiter (token bucket). Together they send more requests for
// some client keys than the limit allows. Every second the demo prints what
// was admitted; at the end it compares each key's admissions with the
// ideal, burst + rate × elapsed.
//
// Usage:
//
//	go run ./cmd/demo [-redis 127.0.0.1:6379] [-duration 5s] [-rate 5] [-burst 10]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
)

const (
	instances   = 3
	maxDuration = time.Minute
)

// demand is how many requests per second all instances together send for
// each client key.
var demand = []struct {
	key    string
	perSec int
}{
	{"alice", 12},
	{"bob", 30},
	{"carol", 3},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	redisAddr string
	duration  time.Duration
	rate      int
	burst     int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.redisAddr, "redis", "", "`address` of a Redis server to use; empty starts an embedded one")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long to run, at most "+maxDuration.String())
	fs.IntVar(&c.rate, "rate", 5, "requests per second allowed per client key")
	fs.IntVar(&c.burst, "burst", 10, "burst allowed per client key")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo [flags]\n\n"+
			"Runs %d simulated instances that share a per-key rate limit through Redis\n"+
			"and prints what each key was admitted.\n\nFlags:\n", instances)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errReported // fs has printed the error and the usage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.duration <= 0 || c.duration > maxDuration {
		return c, fmt.Errorf("-duration %v must be positive and at most %v", c.duration, maxDuration)
	}
	lim := ratelimit.PerSecond(c.rate).WithBurst(c.burst)
	if err := lim.Validate(); err != nil {
		return c, fmt.Errorf("-rate %d -burst %d: %w", c.rate, c.burst, err)
	}
	return c, nil
}

// errReported is a flag error that the flag package has already printed.
var errReported = errors.New("bad flags")

// quietLogger drops go-redis's internal log lines (such as repeated dial
// failures); the demo reports errors itself.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// counts are one client key's totals, updated by every instance.
type counts struct {
	admitted, denied, failed atomic.Int64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 2
	}
	redis.SetLogger(quietLogger{})

	addr := cfg.redisAddr
	prefix := ratelimit.DefaultPrefix
	if addr == "" {
		mr, err := miniredis.Run()
		if err != nil {
			fmt.Fprintf(stderr, "demo: start embedded redis: %v\n", err)
			return 1
		}
		defer mr.Close()
		addr = mr.Addr()
		fmt.Fprintf(stdout, "embedded redis (miniredis) on %s\n", addr)
	} else {
		// A fresh namespace per run, so runs against one server don't mix.
		prefix = fmt.Sprintf("demo:%d:", time.Now().UnixNano())
		fmt.Fprintf(stdout, "redis at %s, keys under %q\n", addr, prefix)
	}
	ks, err := ratelimit.NewKeyspace(prefix)
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}

	lim := ratelimit.PerSecond(cfg.rate).WithBurst(cfg.burst)
	limiters := make([]*algorithms.Limiter, instances)
	for i := range limiters {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer rdb.Close()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "demo: redis at %s: %v\n", addr, err)
			return 1
		}
		limiters[i], err = algorithms.NewLimiter(rdb, lim,
			algorithms.WithAlgorithm(algorithms.TokenBucket), algorithms.WithKeyspace(ks))
		if err != nil {
			fmt.Fprintf(stderr, "demo: %v\n", err)
			return 1
		}
	}

	fmt.Fprintf(stdout, "%d instances, limit %v per key (token bucket), running %v\n", instances, lim, cfg.duration)
	for _, d := range demand {
		fmt.Fprintf(stdout, "  %-6s demand %d/s\n", d.key, d.perSec)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	totals := make([]counts, len(demand))
	start := time.Now()

	var wg sync.WaitGroup
	for i, l := range limiters {
		for k, d := range demand {
			// Each instance sends its share of the key's demand, offset
			// so the instances take turns.
			every := time.Duration(instances) * time.Second / time.Duration(d.perSec)
			offset := every * time.Duration(i) / instances
			wg.Go(func() { send(ctx, l, d.key, every, offset, &totals[k]) })
		}
	}
	wg.Go(func() { report(ctx, stdout, start, totals) })
	wg.Wait()

	elapsed := time.Since(start)
	if elapsed > cfg.duration {
		elapsed = cfg.duration
	}
	fmt.Fprintf(stdout, "\nafter %.1fs: admitted vs ideal = min(sent, burst + rate × elapsed)\n", elapsed.Seconds())
	fmt.Fprintf(stdout, "  %-6s %8s %8s %8s %8s\n", "key", "admitted", "ideal", "denied", "errors")
	for k, d := range demand {
		t := &totals[k]
		sent := t.admitted.Load() + t.denied.Load() + t.failed.Load()
		ideal := min(sent, int64(float64(cfg.burst)+float64(cfg.rate)*elapsed.Seconds()))
		fmt.Fprintf(stdout, "  %-6s %8d %8d %8d %8d\n", d.key, t.admitted.Load(), ideal, t.denied.Load(), t.failed.Load())
	}
	return 0
}

// send asks l to admit one request for key every interval, after offset,
// until ctx is done.
func send(ctx context.Context, l *algorithms.Limiter, key string, every, offset time.Duration, c *counts) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		d, err := l.Allow(ctx, key)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return // the run ended mid-call: not a failure
			}
			c.failed.Add(1)
		case d.Allowed:
			c.admitted.Add(1)
		default:
			c.denied.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// report prints, once a second, how many requests of each key were
// admitted and sent during that second.
func report(ctx context.Context, w io.Writer, start time.Time, totals []counts) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prevAdmitted := make([]int64, len(totals))
	prevSent := make([]int64, len(totals))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var b strings.Builder
		fmt.Fprintf(&b, "t=%2.0fs", time.Since(start).Seconds())
		for k := range totals {
			t := &totals[k]
			admitted := t.admitted.Load()
			sent := admitted + t.denied.Load() + t.failed.Load()
			fmt.Fprintf(&b, "  %s %d/%d", demand[k].key, admitted-prevAdmitted[k], sent-prevSent[k])
			prevAdmitted[k], prevSent[k] = admitted, sent
		}
		b.WriteString("  (admitted/sent)\n")
		io.WriteString(w, b.String())
	}
}
