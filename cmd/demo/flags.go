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
	maxTimeout      = 10 * time.Second
	// httpKeyspace is the -keyspace of -http by default: two demo
	// processes against one -redis share their limits unless told apart.
	httpKeyspace = "http"
	maxKeyspace  = 32 // bytes of a -keyspace name
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
	http        string        // listen address; "" runs the simulation
	keyspace    string        // -keyspace; "" is a random one per run (simulation only)
	timeout     time.Duration // 0: the packages' defaults
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

With -http it serves a small API behind the HTTP middleware instead. Its keys
live under -keyspace (default "http"), so several demo processes given the same
-redis and -keyspace enforce one limit together.

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
	fs.IntVar(&o.instances, "instances", 3, "`number` of simulated instances, each with its own Redis client and limiters (1-"+strconv.Itoa(maxInstances)+"); "+
		"with -http, how many processes share the limits (each limits at its share while Redis is down)")
	fs.StringVar(&o.config, "config", "", "tiers YAML `file` (default: the embedded cmd/demo/tiers.yaml)")
	var redisAddrs string
	fs.StringVar(&redisAddrs, "redis", "", "Redis `address`, or a comma-separated list of Cluster nodes (default: an embedded miniredis)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow non-loopback addresses in -redis, -http and -metrics-addr")
	fs.StringVar(&o.http, "http", "", "serve an HTTP API on `address` (such as 127.0.0.1:8080) instead of simulating")
	fs.StringVar(&o.keyspace, "keyspace", "", "`name` of the Redis namespace of -http (default \""+httpKeyspace+"\"): demo processes with the same -redis and -keyspace share their limits. "+
		"The simulation uses a random one per run")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound of each Redis call and of a caller's wait for a lease refill, at most 10s "+
		"(default: the packages' own, 250ms; a lease refill may take 1s in the background)")
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
	if o.timeout < 0 || o.timeout > maxTimeout || set["timeout"] && o.timeout == 0 {
		return fmt.Errorf("-timeout %v: must be positive and at most %v", o.timeout, maxTimeout)
	}
	if set["keyspace"] {
		if o.http == "" {
			return fmt.Errorf("-keyspace applies to -http: the simulation keeps each run's keys apart, to compare them with exact buckets")
		}
		if !validKeyspace(o.keyspace) {
			return fmt.Errorf("-keyspace %q: want 1 to %d letters, digits, '-', '_' or '.'", o.keyspace, maxKeyspace)
		}
	} else if o.http != "" {
		o.keyspace = httpKeyspace
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

// validKeyspace reports whether name is a -keyspace name.
func validKeyspace(name string) bool {
	if len(name) == 0 || len(name) > maxKeyspace {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
