package ratelimit_test

// The README's snippets, tested. Each ```go block of README.md is preceded
// in the file by a comment naming the Example below that runs it,
//
//	<!-- readme_test.go: Example_readmeUsage -->
//
// and the Example holds the block verbatim, in a closure that receives
// what the block uses without declaring it (rdb, ctx, a client key...).
// TestREADMESnippets checks that every Go block parses, is named, and
// matches its Example line for line; that every YAML block is a config
// tiers.Parse accepts. The Examples' output is checked as any Example's.

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/httplimit"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/reject"
	"github.com/distributedratelimiter/ratelimit/telemetry"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// readmeBlock is one fenced code block of README.md.
type readmeBlock struct {
	lang    string // the word after the opening fence
	text    string
	line    int    // of the opening fence, from 1
	example string // named by the comment above the block; "" if none
}

var exampleTag = regexp.MustCompile(`^<!-- readme_test\.go: (Example\w+) -->$`)

// readmeBlocks returns the fenced code blocks of README.md.
func readmeBlocks(tb testing.TB) []readmeBlock {
	tb.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		tb.Fatal(err)
	}
	var out []readmeBlock
	var cur *readmeBlock
	var body []string
	prev := "" // the last non-blank line outside a block
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: i + 1}
			if m := exampleTag.FindStringSubmatch(prev); m != nil {
				cur.example = m[1]
			}
			body = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			out = append(out, *cur)
			cur = nil
			prev = ""
		case cur != nil:
			body = append(body, line)
		case strings.TrimSpace(line) != "":
			prev = strings.TrimSpace(line)
		}
	}
	if cur != nil {
		tb.Fatalf("README.md:%d: block not closed", cur.line)
	}
	return out
}

// readmeYAML returns the YAML block of README.md that example runs.
func readmeYAML(example string) string {
	for _, b := range readmeBlocks(panicTB{}) {
		if b.lang == "yaml" && b.example == example {
			return b.text
		}
	}
	panic("README.md has no YAML block for " + example)
}

// panicTB is the testing.TB of readmeBlocks in an Example.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// splitImports cuts the import declarations at the start of a snippet
// from the statements after them.
func splitImports(src string) (imports, body string) {
	lines := strings.Split(src, "\n")
	i := 0
	for i < len(lines) {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "":
			i++
		case l == "import (":
			for i < len(lines) && strings.TrimSpace(lines[i]) != ")" {
				i++
			}
			i++
		case strings.HasPrefix(l, "import "):
			i++
		default:
			return strings.Join(lines[:i], "\n"), strings.Join(lines[i:], "\n")
		}
	}
	return src, ""
}

// parseSnippet parses a Go snippet: a file's declarations, or import
// declarations followed by statements, which it wraps in a function.
func parseSnippet(src string) (*ast.File, error) {
	fset := token.NewFileSet()
	if f, err := parser.ParseFile(fset, "snippet.go", "package p\n"+src, parser.ParseComments); err == nil {
		return f, nil
	}
	imports, body := splitImports(src)
	return parser.ParseFile(fset, "snippet.go", "package p\n"+imports+"\nfunc _() {\n"+body+"\n}\n", parser.ParseComments)
}

// codeLines returns the lines of src without indentation, blank lines
// dropped.
func codeLines(src string) []string {
	var out []string
	for _, l := range strings.Split(src, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// contains reports whether want is a contiguous run of lines in have.
func contains(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		if slices.Equal(have[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// TestREADMESnippets checks every Go and YAML block of README.md; see the
// top of this file.
func TestREADMESnippets(t *testing.T) {
	fset := token.NewFileSet()
	self, err := parser.ParseFile(fset, "readme_test.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	examples := map[string]string{} // name → source of its body
	for _, d := range self.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && strings.HasPrefix(fd.Name.Name, "Example") {
			examples[fd.Name.Name] = string(src[fset.Position(fd.Body.Pos()).Offset:fset.Position(fd.Body.End()).Offset])
		}
	}
	imported := map[string]bool{}
	for _, is := range self.Imports {
		p, _ := strconv.Unquote(is.Path.Value)
		imported[p] = true
	}

	var goBlocks, yamlBlocks int
	for _, b := range readmeBlocks(t) {
		where := fmt.Sprintf("README.md:%d", b.line)
		switch b.lang {
		case "go":
			goBlocks++
			f, err := parseSnippet(b.text)
			if err != nil {
				t.Errorf("%s: Go block does not parse: %v", where, err)
				continue
			}
			if b.example == "" {
				t.Errorf("%s: Go block names no Example (<!-- readme_test.go: Example_... --> above it)", where)
				continue
			}
			body, ok := examples[b.example]
			if !ok {
				t.Errorf("%s: readme_test.go has no %s", where, b.example)
				continue
			}
			for _, is := range f.Imports {
				if p, _ := strconv.Unquote(is.Path.Value); !imported[p] {
					t.Errorf("%s: the block imports %s, readme_test.go does not", where, p)
				}
			}
			_, stmts := splitImports(b.text)
			if !contains(codeLines(body), codeLines(stmts)) {
				t.Errorf("%s: %s does not hold the block verbatim:\n%s", where, b.example, stmts)
			}
		case "yaml":
			yamlBlocks++
			if _, err := tiers.Parse(where, []byte(b.text)); err != nil {
				t.Errorf("%s: YAML block is not a valid config: %v", where, err)
			}
			if b.example != "" && !strings.Contains(examples[b.example], "readmeYAML("+strconv.Quote(b.example)+")") {
				t.Errorf("%s: %s does not run this YAML block", where, b.example)
			}
		}
	}
	if goBlocks < 5 || yamlBlocks < 1 {
		t.Errorf("found %d Go and %d YAML blocks in README.md; want the usage, leasing, middleware, plans and telemetry snippets and the plans' YAML",
			goBlocks, yamlBlocks)
	}
}

// TestParseSnippet checks the snippet parser on its three shapes.
func TestParseSnippet(t *testing.T) {
	for _, src := range []string{
		"func f() {}\n",
		"x := 1\n_ = x\n",
		"import (\n\t\"fmt\"\n)\n\nfmt.Println(1)\n",
		"import \"fmt\"\nfmt.Println(1)\n",
	} {
		if _, err := parseSnippet(src); err != nil {
			t.Errorf("parseSnippet(%q): %v", src, err)
		}
	}
	if _, err := parseSnippet("if x {\n"); err == nil {
		t.Error("a broken snippet parses")
	}
	if !contains([]string{"a", "b", "c"}, []string{"b", "c"}) || contains([]string{"a", "b", "c"}, []string{"a", "c"}) {
		t.Error("contains")
	}
}

// frozenRedis starts an embedded Redis whose clock, which the scripts
// read, stands still, so that nothing refills and the output is exact.
func frozenRedis() *miniredis.Miniredis {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	return mr
}

// The README's "Usage": a check, then Enforce and a 429 once the limit is
// spent.
func Example_readmeUsage() {
	mr := frozenRedis()
	defer mr.Close()
	ctx := context.Background()

	readme := func(ctx context.Context, addr, clientIP string, w http.ResponseWriter) error {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}) // such as "127.0.0.1:6379"

		// 100 requests per second on average, at most 200 at once.
		lim := ratelimit.PerSecond(100).WithBurst(200)
		l, err := algorithms.NewLimiter(rdb, lim) // GCRA; see "Which algorithm when"
		if err != nil {
			return err // wraps ratelimit.ErrInvalidLimit
		}

		// Allow: a denial is a result, not an error.
		d, err := l.Allow(ctx, clientIP)
		switch {
		case err != nil:
			// The check itself failed: errors.Is(err, ratelimit.ErrStore) when
			// Redis is unreachable or slow, ratelimit.ErrInvalidKey, ctx's error.
		case !d.Allowed:
			// Denied; d.RetryAfter says when the same request could pass.
		}

		// Or reject.Enforce with the Reject strategy, which turns a denial into
		// an *ExceededError that matches ratelimit.ErrRateLimitExceeded and
		// carries the decision.
		if _, err := reject.Enforce(ctx, l, clientIP, 1, reject.Reject()); err != nil {
			var ex *ratelimit.ExceededError
			if errors.As(err, &ex) {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ex.Decision.RetryAfter.Seconds()))))
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return nil
			}
			return err
		}
		return nil
	}

	// The client has spent 199 of its 200 already: Allow takes the last
	// one, and Enforce refuses.
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	l, err := algorithms.NewLimiter(rdb, ratelimit.PerSecond(100).WithBurst(200))
	if err != nil {
		panic(err)
	}
	if d, err := l.AllowN(ctx, "192.0.2.1", 199); err != nil || !d.Allowed {
		panic(fmt.Sprint(d, err))
	}
	rec := httptest.NewRecorder()
	if err := readme(ctx, mr.Addr(), "192.0.2.1", rec); err != nil {
		panic(err)
	}
	fmt.Println(rec.Code, "Retry-After:", rec.Header().Get("Retry-After"))
	// Output:
	// 429 Retry-After: 1
}

// The README's "Local token leasing": the first check of a key leases
// from Redis.
func Example_readmeLease() {
	mr := frozenRedis()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	readme := func(ctx context.Context, rdb redis.UniversalClient, apiKey string) error {
		l, err := lease.New(rdb, ratelimit.PerSecond(100).WithBurst(200))
		if err != nil {
			return err
		}
		defer l.Close(ctx) // gives unspent tokens back to Redis

		d, err := l.Allow(ctx, apiKey) // ~20–25 ns, 0 allocations when the lease has tokens (docs/architecture.md)
		fmt.Println(d.Allowed, d.Source, err)
		return nil
	}
	if err := readme(context.Background(), rdb, "key-1"); err != nil {
		panic(err)
	}
	// Output:
	// true redis <nil>
}

// serve sends n requests to h, with the X-API-Key header key unless it is
// empty, and prints how many got each status code.
func serve(h http.Handler, key string, n int) {
	codes := map[int]int{}
	for range n {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "192.0.2.1:1234"
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes[rec.Code]++
	}
	var parts []string
	for _, c := range slices.Sorted(func(yield func(int) bool) {
		for c := range codes {
			if !yield(c) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%d ×%d", c, codes[c]))
	}
	if key == "" {
		key = "(no key)"
	}
	fmt.Printf("%s: %s\n", key, strings.Join(parts, ", "))
}

// hello is the API behind the middleware in the README's examples.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })

// The README's one limit in front of a handler: 100 a minute per client
// IP.
func Example_readmeLimit() {
	mr := frozenRedis()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	readme := func(rdb redis.UniversalClient, mux *http.ServeMux, api http.Handler) error {
		// 100 requests a minute per client IP.
		lim, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(100))
		if err != nil {
			return err
		}
		mux.Handle("/", httplimit.Limit(lim)(api))
		return nil
	}
	mux := http.NewServeMux()
	if err := readme(rdb, mux, hello); err != nil {
		panic(err)
	}
	serve(mux, "", 101)
	// Output:
	// (no key): 200 ×100, 429 ×1
}

// The README's plans: its YAML, loaded from a file, enforced by the
// middleware with tiers.Redis, which leases pro's limit.
func Example_readmePlans() {
	mr := frozenRedis()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	dir, err := os.MkdirTemp("", "readme")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiers.yaml")
	if err := os.WriteFile(path, []byte(readmeYAML("Example_readmePlans")), 0o600); err != nil {
		panic(err)
	}

	readme := func(ctx context.Context, rdb redis.UniversalClient, path string, mux *http.ServeMux, api http.Handler) error {
		cfg, err := tiers.LoadFile(path) // the YAML above
		if err != nil {
			return err
		}
		// Limits with lease: true get a leasing limiter, the others a check in
		// Redis per request; nil keeps the per-request limiters' default options.
		plans, err := tiers.New(tiers.Redis(rdb, nil), cfg)
		if err != nil {
			return err
		}
		defer plans.Close(ctx)
		mux.Handle("/", httplimit.New(plans, httplimit.WithKey(httplimit.Header("X-API-Key")))(api))

		serve(mux, "alice", 11)                // free: a burst of 10
		serve(mux, "key-of-a-pro-customer", 5) // pro, leased
		serve(mux, "", 1)
		return nil
	}
	if err := readme(context.Background(), rdb, path, http.NewServeMux(), hello); err != nil {
		panic(err)
	}
	// Output:
	// alice: 200 ×10, 429 ×1
	// key-of-a-pro-customer: 200 ×5
	// (no key): 400 ×1
}

// The README's telemetry line, with an OpenTelemetry SDK installed as the
// global meter provider, as an application would.
func Example_readmeTelemetry() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	otel.SetMeterProvider(mp)
	defer otel.SetMeterProvider(noop.NewMeterProvider())

	mr := frozenRedis()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	cfg, err := tiers.Parse("tiers.yaml", []byte(readmeYAML("Example_readmePlans")))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	readme := func(rdb redis.UniversalClient, cfg tiers.Config) error {
		plans, err := tiers.New(telemetry.Factory(tiers.Redis(rdb, nil)), cfg)
		if err != nil {
			return err
		}
		defer plans.Close(ctx)
		for range 3 {
			if _, err := plans.Allow(ctx, "key-of-a-pro-customer"); err != nil {
				return err
			}
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			return err
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "ratelimit.decisions" {
					var n int64
					for _, p := range sum.DataPoints {
						n += p.Value
					}
					fmt.Println(m.Name, n)
				}
			}
		}
		return nil
	}
	if err := readme(rdb, cfg); err != nil {
		panic(err)
	}
	// Output:
	// ratelimit.decisions 3
}
