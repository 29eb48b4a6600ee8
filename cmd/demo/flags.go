package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Bounds of the flags.
const (
	defaultDuration = 10 * time.Second
	maxDuration     = time.Minute // a simulation
	maxHTTPDuration = time.Hour   // -http: serve at most this long
	maxInstances    = 16
	defaultTimeout  = 50 * time.Millisecond // algorithms.DefaultTimeout, lease.DefaultRefillTimeout
)

// Modes of the simulation.
const (
	modeLease  = "lease"
	modeDirect = "direct"
	modeBoth   = "both"
)

// Metrics exporters.
const (
	metricsOff        = "off"
	metricsStdout     = "stdout"
	metricsPrometheus = "prometheus"
)

// options are the parsed command-line flags.
type options struct {
	mode        string        // modeLease, modeDirect or modeBoth
	duration    time.Duration // how long each mode runs, or how long -http serves
	untilStop   bool          // -http without -duration: serve until Ctrl-C (at most maxHTTPDuration)
	instances   int
	config      string   // path of a tiers YAML file; "" is the embedded one
	redis       []string // addresses; none starts miniredis
	allowRemote bool
	http        string // listen address; "" runs the simulation
	timeout     time.Duration
	metrics     string
	metricsAddr string
}

// modes returns the modes to run, in order.
func (o options) modes() []string {
	if o.mode == modeBoth {
		return []string{modeLease, modeDirect}
	}
	return []string{o.mode}
}

// errHelp and errUsage are flag errors that the flag package has already
// printed (with the usage).
var (
	errHelp  = flag.ErrHelp
	errUsage = errors.New("bad flags")
)

const usageHead = `Usage: go run ./cmd/demo [flags]

Simulates several instances of a service that share rate limits through one
Redis, serving clients of a free and a pro tier (from a YAML config), some
over their limits. It runs the same workload with leased limits (-mode lease:
most checks answered from local tokens) and per-request limits (-mode direct:
one Redis script per check), prints a live view each second and then compares
admissions with an ideal single bucket, Redis calls and latency.

With -http it serves a small API behind the HTTP middleware instead.

Redis: an embedded miniredis by default; -redis for a real server or Cluster.
Only loopback addresses are used unless -allow-remote is given.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", modeBoth, "which `mode` to run: lease, direct, or both (lease, then direct, same workload)")
	fs.DurationVar(&o.duration, "duration", defaultDuration,
		"how long each mode runs, at most 1m (-http: until Ctrl-C by default, at most 1h)")
	fs.IntVar(&o.instances, "instances", 3, "`number` of simulated instances, each with its own Redis client and limiters (1-"+strconv.Itoa(maxInstances)+")")
	fs.StringVar(&o.config, "config", "", "tiers YAML `file` (default: the embedded cmd/demo/tiers.yaml)")
	var redisAddrs string
	fs.StringVar(&redisAddrs, "redis", "", "Redis `address`, or a comma-separated list of Cluster nodes (default: an embedded miniredis)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow non-loopback addresses in -redis, -http and -metrics-addr")
	fs.StringVar(&o.http, "http", "", "serve an HTTP API on `address` (such as 127.0.0.1:8080) instead of simulating")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "deadline of each Redis call")
	fs.StringVar(&o.metrics, "metrics", metricsOff, "`exporter` of OpenTelemetry metrics: off, stdout (printed at the end), prometheus")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9464", "`address` of the Prometheus /metrics endpoint")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, errHelp
		}
		return o, errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if redisAddrs != "" {
		for a := range strings.SplitSeq(redisAddrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.redis = append(o.redis, a)
			}
		}
		if len(o.redis) == 0 {
			return o, fmt.Errorf("-redis %q names no address", redisAddrs)
		}
	}
	return o, o.validate(set)
}

// validate checks o; set holds the names of the flags given.
func (o *options) validate(set map[string]bool) error {
	switch o.mode {
	case modeLease, modeDirect, modeBoth:
	default:
		return fmt.Errorf("-mode %q: want lease, direct or both", o.mode)
	}
	limit := maxDuration
	if o.http != "" {
		limit = maxHTTPDuration
		if !set["duration"] {
			o.duration, o.untilStop = maxHTTPDuration, true
		}
	}
	if o.duration <= 0 || o.duration > limit {
		return fmt.Errorf("-duration %v: must be positive and at most %v", o.duration, limit)
	}
	if o.instances < 1 || o.instances > maxInstances {
		return fmt.Errorf("-instances %d: must be between 1 and %d", o.instances, maxInstances)
	}
	if o.timeout <= 0 || o.timeout > 10*time.Second {
		return fmt.Errorf("-timeout %v: must be positive and at most 10s", o.timeout)
	}
	switch o.metrics {
	case metricsOff, metricsStdout, metricsPrometheus:
	default:
		return fmt.Errorf("-metrics %q: want off, stdout or prometheus", o.metrics)
	}
	for _, a := range o.redis {
		if err := checkAddr("-redis", a, o.allowRemote); err != nil {
			return err
		}
	}
	if o.http != "" {
		if err := checkAddr("-http", o.http, o.allowRemote); err != nil {
			return err
		}
	}
	if o.metrics == metricsPrometheus {
		if err := checkAddr("-metrics-addr", o.metricsAddr, o.allowRemote); err != nil {
			return err
		}
	}
	return nil
}

// checkAddr checks that addr is host:port and, unless remote is allowed,
// that host is a loopback address: "localhost" or a loopback IP. An empty
// host (":8080") means every interface, which is not loopback.
func checkAddr(flagName, addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port, such as 127.0.0.1:6379 (%v)", flagName, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s %q: bad port %q", flagName, addr, port)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	what := "is not a loopback address"
	if host == "" {
		what = "means every network interface"
	}
	return fmt.Errorf("%s %q: %s; the demo uses only this machine (127.0.0.1, ::1, localhost) "+
		"unless -allow-remote is given", flagName, addr, what)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
