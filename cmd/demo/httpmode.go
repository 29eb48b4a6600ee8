package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// apiKeyHeader carries the client key of the HTTP API.
const apiKeyHeader = "X-API-Key"

// serveHTTP serves the API of newAPI on o.http with one instance's
// limiter (leased unless -mode direct), until ctx is done or o.duration
// has passed, and prints a line each second in which requests came.
func serveHTTP(ctx context.Context, o options, cfg tiers.Config, cfgName string, st *store, m *metrics, w io.Writer) error {
	mode := modeLease
	if o.mode == modeDirect {
		mode, cfg = modeDirect, withoutLease(cfg)
	}
	prefix := "demo:" + o.keyspace + ":"
	base, err := ratelimit.NewKeyspace(prefix)
	if err != nil {
		return err
	}
	rdb, err := st.client(ctx, m.hook())
	if err != nil {
		return err
	}
	defer rdb.Close()
	lim, err := newLimiter(rdb, cfg, base, o, m, 0)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lim.Close(cctx)
	}()
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return fmt.Errorf("-http: %w", err)
	}
	var counts statusCounts
	srv := &http.Server{Handler: counts.wrap(newAPI(lim)), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	printTry(w, "http://"+ln.Addr().String(), cfg, cfgName, st, mode, o, prefix)
	until := fmt.Sprintf("for %v", o.duration)
	if o.untilStop {
		until = fmt.Sprintf("until Ctrl-C (at most %v)", o.duration)
	}
	fmt.Fprintf(w, "Serving %s; a line per second shows the answers.\n", until)

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case err := <-served:
			return fmt.Errorf("http server: %w", err)
		case now := <-tick.C:
			if line := counts.line(); line != "" {
				fmt.Fprintf(w, "%s  %s\n", now.Format("15:04:05"), line)
			}
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	m.flush("-http")
	fmt.Fprintln(w, "stopped")
	return nil
}

// newAPI returns the demo API: GET /hello behind the rate limit middleware,
// keyed by the X-API-Key header, and GET / explaining it.
func newAPI(lim *tiers.Limiter) http.Handler {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(apiKeyHeader)
		tier, _ := lim.Resolve(r.Context(), key)
		fmt.Fprintf(w, "hello, %s (tier %s)\n", key, tier)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /hello", httplimit.New(lim, httplimit.WithKey(httplimit.Header(apiKeyHeader)))(hello))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "GET /hello with an %s header; the answer carries RateLimit-Policy and RateLimit,\n"+
			"and 429 Too Many Requests with Retry-After when a limit is exceeded.\n", apiKeyHeader)
	})
	return mux
}

// printTry prints the plans, where the limits live, and curl commands for
// a client of each tier.
func printTry(w io.Writer, url string, cfg tiers.Config, cfgName string, st *store, mode string, o options, prefix string) {
	var b strings.Builder
	fmt.Fprintf(&b, "ratelimit demo API on %s (-mode %s, %v)\n", url, mode, st)
	printPlans(&b, cfg, cfgName)
	if st.embedded() {
		fmt.Fprintf(&b, "Limits:   in this process's embedded Redis; with -redis, every demo process given the same\n"+
			"          -redis and -keyspace %s shares them\n", o.keyspace)
	} else {
		fmt.Fprintf(&b, "Limits:   shared by every demo process with this -redis and -keyspace %s (Redis keys %s*)\n",
			o.keyspace, prefix)
	}
	hello := url + "/hello"
	b.WriteString("Try:\n")
	// One listed key per tier, and one the config does not list.
	var keys []string
	for k := range cfg.Clients {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		if t := cfg.Clients[k]; !seen[t] {
			seen[t] = true
			fmt.Fprintf(&b, "  curl -i -H '%s: %s' %s   # %s\n", apiKeyHeader, k, hello, t)
		}
	}
	if cfg.DefaultTier != "" {
		other := "alice"
		if _, taken := cfg.Clients[other]; taken {
			other = freeKey("alice-", 2, func(k string) bool { _, ok := cfg.Clients[k]; return ok })
		}
		fmt.Fprintf(&b, "  curl -i -H '%s: %s' %s   # %s\n", apiKeyHeader, other, hello, cfg.DefaultTier)
		fmt.Fprintf(&b, "  for i in $(seq 15); do curl -so /dev/null -w '%%{http_code} ' -H %s:%s %s; done; echo\n",
			apiKeyHeader, other, hello)
	}
	fmt.Fprintf(&b, "  curl -i %s   # no key: 400\n", hello)
	io.WriteString(w, b.String())
}

// statusCounts counts responses by status code class, for the per-second
// line. Safe for concurrent use.
type statusCounts struct {
	ok, tooMany, bad, other atomic.Int64
}

func (c *statusCounts) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		switch {
		case sw.code < 300:
			c.ok.Add(1)
		case sw.code == http.StatusTooManyRequests:
			c.tooMany.Add(1)
		case sw.code == http.StatusBadRequest:
			c.bad.Add(1)
		default:
			c.other.Add(1)
		}
	})
}

// line returns the counts since the last call, or "" if there were none.
func (c *statusCounts) line() string {
	n := [4]int64{c.ok.Swap(0), c.tooMany.Swap(0), c.bad.Swap(0), c.other.Swap(0)}
	if n == [4]int64{} {
		return ""
	}
	return fmt.Sprintf("%d × 2xx, %d × 429, %d × 400, %d other", n[0], n[1], n[2], n[3])
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
