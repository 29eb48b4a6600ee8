package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// options are the command-line settings of one run.
type options struct {
	redis  string // loopback host:port of an existing server; "" starts one
	short  bool   // quick run: shorter phases, docs written only with -out
	out    string // docs directory; "" means write nothing
	outSet bool   // -out was given explicitly
}

// errHelp is returned by parseFlags for -h and -help.
var errHelp = flag.ErrHelp

const usageText = `Usage: go run ./benchmarks [-short] [-redis ADDR] [-out DIR]

Runs the leasing limiter (lease), the per-request token bucket (algorithms,
TokenBucket) and github.com/go-redis/redis_rate/v10 (per-request GCRA) side
by side on the same workloads against one redis-server, then writes
DIR/benchmarks.md and charts in DIR/img/, and prints a final summary line.

By default it starts its own redis-server on a free 127.0.0.1 port and stops
it at the end. A full run takes about four minutes on two cores; -short
takes under a minute and writes the docs only when -out is given.

Flags:
`

// parseFlags parses args (without the program name). Usage and errors go to
// stderr. It returns errHelp for -h.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage printed for -h only
	fs.Usage = func() {}
	fs.StringVar(&o.redis, "redis", "", "use the redis-server at this loopback `ADDR` (host:port) instead of starting one; only 127.0.0.0/8, ::1 and localhost are accepted")
	fs.BoolVar(&o.short, "short", false, "quick run (under a minute): shorter phases; writes docs only when -out is given")
	fs.StringVar(&o.out, "out", "docs", "write benchmarks.md and img/*.png into this `DIR`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageText)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return o, errHelp
		}
		return o, fmt.Errorf("%v (see -h)", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: the benchmarks take flags only (see -h)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "out" {
			o.outSet = true
		}
	})
	if o.outSet && strings.TrimSpace(o.out) == "" {
		return o, errors.New("-out must name a directory")
	}
	if o.short && !o.outSet {
		o.out = ""
	}
	if o.redis != "" {
		addr, err := checkLoopback(o.redis)
		if err != nil {
			return o, err
		}
		o.redis = addr
	}
	return o, nil
}

// checkLoopback accepts host:port where host is a loopback IP literal or
// "localhost" and port is 1..65535, and returns the address to dial
// ("localhost" becomes 127.0.0.1, so no resolver can send it elsewhere).
// The benchmarks write many keys and load the server hard, so they refuse
// anything reachable from another machine.
func checkLoopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("-redis %q: want host:port: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("-redis %q: port %q is not a number in 1..65535", addr, port)
	}
	if strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("-redis %q: host %q is not an IP address or localhost; only loopback servers are allowed", addr, host)
	}
	if !ip.IsLoopback() {
		return "", fmt.Errorf("-redis %q: %s is not a loopback address; only loopback servers are allowed", addr, host)
	}
	return net.JoinHostPort(ip.String(), port), nil
}
