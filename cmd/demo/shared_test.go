package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// syncBuffer is a bytes.Buffer that a running demo writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is one `go run ./cmd/demo -http ...` run inside the test.
type server struct {
	out, errOut syncBuffer
	done        chan int // the exit code
}

// startDemo runs the demo with args until the test ends.
func startDemo(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{done: make(chan int, 1)}
	go func() { s.done <- run(ctx, args, &s.out, &s.errOut) }()
	t.Cleanup(func() {
		cancel()
		if code := <-s.done; code != 0 {
			t.Errorf("demo exited with %d: %s", code, s.errOut.String())
		}
	})
	return s
}

// waitFor waits for the output of s to match re and returns re's first
// submatch.
func (s *server) waitFor(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: only a broken demo waits this long
	for {
		if m := re.FindStringSubmatch(s.out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("demo exited with %d before printing %v:\n%s%s", code, re, s.out.String(), s.errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo printed no %v:\n%s%s", re, s.out.String(), s.errOut.String())
		}
	}
}

var apiURL = regexp.MustCompile(`ratelimit demo API on (http://\S+) `)

// get requests url/hello as key and returns the status code.
func get(t *testing.T, url, key string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(apiKeyHeader, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sharedConfig is a plan whose limit does not refill measurably during a
// test: 10 an hour, a burst of 10, leased where the mode leases. The token
// bucket lets a leasing and a per-request process share its state.
const sharedConfig = `default_tier: free
tiers:
  free:
    limits:
      hour: {rate: 10, period: 1h, burst: 10, algorithm: token_bucket, lease: true}
`

// TestTwoProcessesShareALimit runs two demo API servers, as two processes
// would, against one real redis-server with the same -keyspace, and
// alternates a client's requests between them: together they admit the
// one limit's 10, not 10 each. With different keyspaces each admits its
// own 10.
func TestTwoProcessesShareALimit(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "tiers.yaml")
	if err := os.WriteFile(cfgPath, []byte(sharedConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name         string
		modes        [2]string
		keyspaces    [2]string
		wantAdmitted int
	}{
		{"lease+lease", [2]string{modeLease, modeLease}, [2]string{"shared1", "shared1"}, 10},
		{"lease+direct", [2]string{modeLease, modeDirect}, [2]string{"shared2", "shared2"}, 10},
		{"apart", [2]string{modeLease, modeLease}, [2]string{"apart-a", "apart-b"}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var urls [2]string
			for i := range urls {
				s := startDemo(t, "-http", "127.0.0.1:0", "-redis", srv.Addr(), "-keyspace", tc.keyspaces[i],
					"-mode", tc.modes[i], "-config", cfgPath, "-instances", "2", "-timeout", "5s")
				urls[i] = s.waitFor(t, apiURL)
			}
			start := time.Now()
			var admitted [2]int
			for i := range 60 { // 30 to each server, alternately
				switch code := get(t, urls[i%2], "alice"); code {
				case http.StatusOK:
					admitted[i%2]++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("request %d: status %d", i, code)
				}
			}
			// 10 an hour: a token more every 6 minutes of the test.
			allowance := tc.wantAdmitted + int(time.Since(start)/(6*time.Minute))*len(tc.keyspaces)
			total := admitted[0] + admitted[1]
			if total > allowance || admitted[0] == 0 || admitted[1] == 0 {
				t.Errorf("admitted %d + %d = %d; want at most %d, some by each", admitted[0], admitted[1], total, allowance)
			}
			t.Logf("admitted %d + %d of 60", admitted[0], admitted[1])
			// A token leased and not yet spent when the requests stop is
			// not admitted: at most a few.
			if total < tc.wantAdmitted-4 {
				t.Errorf("admitted %d + %d = %d; want about %d", admitted[0], admitted[1], total, tc.wantAdmitted)
			}
		})
	}
}

// TestMetricsPrometheusScrape serves the API with -metrics prometheus and
// reads the scrape after a few requests: the decisions of each limit and,
// for a leased limit, the circuit breaker's state; no second or third
// count of the failure policy's decisions.
func TestMetricsPrometheusScrape(t *testing.T) {
	metricsURL := regexp.MustCompile(`Prometheus metrics at (http://\S+) `)
	s := startDemo(t, "-http", "127.0.0.1:0", "-metrics", "prometheus", "-metrics-addr", "127.0.0.1:0", "-timeout", "5s")
	murl := s.waitFor(t, metricsURL)
	url := s.waitFor(t, apiURL)
	for range 12 { // free: burst 10, then denials
		get(t, url, "alice")
	}
	get(t, url, "pro-1")
	resp, err := http.Get(murl)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := string(body)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ratelimit_circuit_state\{[^}]*ratelimit_circuit_state="closed"[^}]*ratelimit_limit="second"[^}]*ratelimit_tier="free"[^}]*\} 1$`),
		regexp.MustCompile(`(?m)^ratelimit_circuit_state\{[^}]*ratelimit_circuit_state="open"[^}]*ratelimit_limit="second"[^}]*ratelimit_tier="pro"[^}]*\} 0$`),
		regexp.MustCompile(`(?m)^ratelimit_decisions_total\{[^}]*ratelimit_limit="second"[^}]*ratelimit_result="denied"[^}]*ratelimit_tier="free"[^}]*\} [1-9]`),
		regexp.MustCompile(`(?m)^ratelimit_lease_tokens_leased_total\{[^}]*ratelimit_limit="all-free"`),
		regexp.MustCompile(`(?m)^ratelimit_redis_calls_total\{`),
	} {
		if !want.MatchString(scrape) {
			t.Errorf("scrape lacks %v", want)
		}
	}
	for _, gone := range []string{"ratelimit_fallback_decisions_total", "ratelimit_lease_fallbacks_total"} {
		if strings.Contains(scrape, gone) {
			t.Errorf("scrape has %s: the failure policy's decisions count once, in ratelimit_decisions_total", gone)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", scrape)
	}
}
