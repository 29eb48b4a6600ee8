package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// row is one line of the summary table.
type row struct {
	requests, admitted, ideal int64
	vsIdeal, per1k            float64
}

// summaryRows parses the summary table of out, by "tier mode".
func summaryRows(t *testing.T, out string) map[string]row {
	t.Helper()
	_, table, ok := strings.Cut(out, "\nSummary:")
	if !ok {
		t.Fatalf("no summary in output:\n%s", out)
	}
	rows := map[string]row{}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) != 10 || (f[1] != modeLease && f[1] != modeDirect) || strings.HasPrefix(line, " ") {
			continue // not a row: the causes of false denials are indented
		}
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
			if err != nil {
				t.Fatalf("bad number %q in %q", s, line)
			}
			return v
		}
		rows[f[0]+" "+f[1]] = row{requests: int64(num(f[2])), admitted: int64(num(f[3])), ideal: int64(num(f[4])),
			vsIdeal: num(f[5]), per1k: num(f[7])}
	}
	return rows
}

// TestRunBoth runs the demo as a newcomer does, briefly, and checks the
// summary: every tier in both modes, sane numbers, and leasing making
// fewer Redis calls.
func TestRunBoth(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-duration", "1500ms", "-timeout", "2s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"embedded miniredis", "Live view: a line a second", `"!3"`, "-mode lease:", "-mode direct:",
		"avg", "Leasing against per-request checks", "false-den"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	rows := summaryRows(t, s)
	for _, k := range []string{"free lease", "free direct", "pro lease", "pro direct", "all lease", "all direct"} {
		r, ok := rows[k]
		switch {
		case !ok:
			t.Errorf("no %q row", k)
		case r.requests == 0 || r.admitted == 0 || r.admitted > r.requests || r.ideal > r.requests:
			t.Errorf("%s: %+v", k, r)
		case r.vsIdeal > 25:
			t.Errorf("%s: over-admission %v%%", k, r.vsIdeal)
		}
	}
	// The heavy free clients are denied where exact buckets deny them (a
	// loaded machine may send fewer requests than their bursts); pro is
	// under its limit.
	for _, k := range []string{"free lease", "free direct"} {
		if f := rows[k]; f.ideal < f.requests && f.admitted >= f.requests {
			t.Errorf("%s admitted %d of %d (ideal %d), want denials", k, f.admitted, f.requests, f.ideal)
		}
	}
	if f := rows["free lease"]; f.ideal >= f.requests {
		t.Errorf("free lease: ideal %d of %d requests, want the heavy clients over their limit", f.ideal, f.requests)
	}
	if p := rows["pro direct"]; p.ideal != p.requests {
		t.Errorf("pro direct: ideal %d of %d requests, want all", p.ideal, p.requests)
	}
	if l, d := rows["all lease"].per1k, rows["all direct"].per1k; !(l < d) || d < 500 {
		t.Errorf("Redis calls per 1k decisions: lease %v, direct %v; want lease < direct, direct >= 500", l, d)
	}
	if t.Failed() {
		t.Logf("output:\n%s", s)
	}
}

// TestRunRealServer runs one mode against a server given with -redis
// (a miniredis of the test's own, not a shared Redis).
func TestRunRealServer(t *testing.T) {
	mr := miniredis.RunT(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-redis", mr.Addr(), "-mode", "lease", "-instances", "2",
		"-duration", "500ms", "-timeout", "2s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "Redis at "+mr.Addr()) || summaryRows(t, out.String())["pro lease"].admitted == 0 {
		t.Errorf("output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "Leasing against") {
		t.Error("one mode should print no comparison")
	}
	if len(mr.Keys()) == 0 {
		t.Error("nothing written to the -redis server")
	}
	for _, k := range mr.Keys() {
		if !strings.HasPrefix(k, "demo:") {
			t.Errorf("key %q outside the demo's namespace", k)
		}
	}
}

func TestRunUnreachableRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	addr := mr.Addr()
	mr.Close()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-redis", addr}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "Redis at "+addr) {
		t.Errorf("run = %d, stderr %q", code, errOut.String())
	}
}

// TestRunInterrupted cancels the run, as Ctrl-C does: the summary of what
// ran is printed at once.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"-duration", "30s", "-timeout", "2s"}, &out, &errOut)
	if code != 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("run = %d after %v, stderr:\n%s", code, time.Since(start), errOut.String())
	}
	rows := summaryRows(t, out.String())
	if _, ok := rows["all lease"]; !ok {
		t.Errorf("no lease summary:\n%s", out.String())
	}
	if _, ok := rows["all direct"]; ok {
		t.Errorf("direct ran after the interruption:\n%s", out.String())
	}
}

func TestMetricsStdout(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-mode", "lease", "-duration", "500ms", "-timeout", "2s",
		"-metrics", "stdout"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	s := out.String()
	summary := strings.Index(s, "\nSummary:")
	metrics := strings.Index(s, "OpenTelemetry metrics at the end of -mode lease")
	if summary < 0 || metrics < summary {
		t.Fatalf("want the metrics after the summary:\n%.3000s", s)
	}
	// Each simulated instance's limiters are told apart by demo.instance,
	// so that their gauges (the circuit state among them) do not overwrite
	// each other.
	for _, want := range []string{`"ratelimit.decisions"`, `"ratelimit.redis.calls"`, `"ratelimit.lease.refills"`,
		`"ratelimit.circuit.state"`, `"demo.instance"`} {
		if !strings.Contains(s[metrics:], want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsPrometheus(t *testing.T) {
	o := options{metrics: metricsPrometheus, metricsAddr: "127.0.0.1:0"}
	var out bytes.Buffer
	m, err := newMetrics(o, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.shutdown(context.Background())
	addr := strings.Fields(strings.TrimPrefix(out.String(), "Prometheus metrics at "))[0]
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", addr, resp.Status)
	}
}

func TestAPI(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	cfg, _, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := ratelimit.NewKeyspace("test:")
	lim, err := newLimiter(rdb, cfg, ks, options{timeout: 2 * time.Second, instances: 1}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close(context.Background())
	srv := httptest.NewServer(newAPI(lim))
	defer srv.Close()

	get := func(key string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
		if key != "" {
			req.Header.Set(apiKeyHeader, key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("pro-1")
	if resp.StatusCode != 200 || body != "hello, pro-1 (tier pro)\n" || resp.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("pro-1: %s %q %v", resp.Status, body, resp.Header)
	}
	codes := ""
	for range 11 { // free: burst 10
		resp, _ = get("alice")
		codes += strconv.Itoa(resp.StatusCode) + " "
	}
	if !strings.HasSuffix(codes, "200 429 ") || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(resp.Header.Get("RateLimit"), `"free.second";r=0`) {
		t.Errorf("alice: %s, last headers %v", codes, resp.Header)
	}
	if resp, _ = get(""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no key: %s", resp.Status)
	}
}

func TestRunHTTP(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-http", "127.0.0.1:0", "-duration", "300ms", "-mode", "direct"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{"-mode direct", "curl -i -H 'X-API-Key: pro-1' http://127.0.0.1:", "X-API-Key:alice", "Serving for 300ms", "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunRedisServer runs both modes against a real redis-server of the
// test's own, and TestRunCluster against a Redis Cluster: keys of one
// client share a hash slot, and the demo's ClusterClient finds them.
func TestRunRedisServer(t *testing.T) {
	s := redistest.Start(t)
	runAgainst(t, s.Addr(), "Redis at "+s.Addr())
}

func TestRunCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	runAgainst(t, strings.Join(c.Addrs(), ","), "Redis Cluster at ")
}

func runAgainst(t *testing.T, redisAddr, banner string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-redis", redisAddr, "-duration", "1s", "-timeout", "2s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("run = %d, stderr:\n%s", code, errOut.String())
	}
	rows := summaryRows(t, out.String())
	l, d := rows["all lease"], rows["all direct"]
	if !strings.Contains(out.String(), banner) || l.admitted == 0 || d.admitted == 0 || !(l.per1k < d.per1k) ||
		strings.Contains(out.String(), "checks failed, ") {
		t.Errorf("output:\n%s", out.String())
	}
}
