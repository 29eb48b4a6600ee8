package telemetry_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/internal/luasrc"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
	"github.com/distributedratelimiter/ratelimit/telemetry"
)

// scriptSHA returns the SHA-1 of the algorithms package's script built
// from its file.
func scriptSHA(t testing.TB, name string) string {
	t.Helper()
	src, err := luasrc.Expand(os.DirFS(filepath.Join("..", "algorithms", "lua")), name+".lua")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// TestScriptName checks that algorithms.ScriptName knows every script file
// by its name, and nothing else.
func TestScriptName(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "algorithms", "lua", "*.lua"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		sha := scriptSHA(t, name)
		if got, ok := algorithms.ScriptName(sha); !ok || got != name {
			t.Errorf("ScriptName(sha1 of %s) = %q, %v; want %q, true", filepath.Base(f), got, ok, name)
		}
	}
	sum := sha1.Sum([]byte("return 1"))
	if name, ok := algorithms.ScriptName(hex.EncodeToString(sum[:])); ok {
		t.Errorf("ScriptName of another script = %q, true; want false", name)
	}
}

// TestRedisHook runs limiters on a real redis-server through a client
// with the hook, and checks calls, outcomes, durations and spans.
func TestRedisHook(t *testing.T) {
	mp, r := newReader(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp), telemetry.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	rdb.AddHook(hook)
	ks, err := ratelimit.NewKeyspace(redistest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := algorithms.NewLimiter(rdb, ratelimit.PerSecond(100), algorithms.WithAlgorithm(algorithms.GCRA), algorithms.WithKeyspace(ks))
	if err != nil {
		t.Fatal(err)
	}

	// A fresh server has no script cached: EVALSHA fails with NOSCRIPT and
	// go-redis retries with EVAL. Then EVALSHA succeeds.
	for i := range 3 {
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("Allow %d: %+v, %v", i, d, err)
		}
	}
	// Another command is not counted.
	if err := rdb.Set(ctx, ks.Prefix()+"other", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A key of the wrong type: an error reply.
	rkey, err := ks.ClientKey("wrong", algorithms.GCRA.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(ctx, rkey, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Allow(ctx, "wrong"); !errors.Is(err, ratelimit.ErrStore) {
		t.Fatalf("Allow on a list: %v, want ErrStore", err)
	}
	// A stalled server: the limiter's deadline passes.
	fast, err := algorithms.NewLimiter(rdb, ratelimit.PerSecond(100), algorithms.WithAlgorithm(algorithms.GCRA),
		algorithms.WithKeyspace(ks), algorithms.WithTimeout(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	srv.Pause(300 * time.Millisecond)
	if _, err := fast.Allow(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Allow on a paused server: %v, want a deadline error", err)
	}
	// A pipeline with a script call that is not cached, and a GET.
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, ks.Prefix()+"other")
		p.EvalSha(ctx, scriptSHA(t, "token_bucket_take"), []string{ks.Prefix() + "p"}, 1)
		return nil
	})
	if !redis.HasErrorPrefix(err, "NOSCRIPT") {
		t.Fatalf("pipeline: %v, want NOSCRIPT", err)
	}

	got := collect(t, r)
	want := map[string]int64{
		"ratelimit.outcome=noscript,ratelimit.script=gcra":              1,
		"ratelimit.outcome=ok,ratelimit.script=gcra":                    3, // EVAL, then EVALSHA twice
		"ratelimit.outcome=error,ratelimit.script=gcra":                 1,
		"ratelimit.outcome=timeout,ratelimit.script=gcra":               1,
		"ratelimit.outcome=noscript,ratelimit.script=token_bucket_take": 1,
	}
	assertInts(t, got, "ratelimit.redis.calls", want)
	h := histCounts(t, got["ratelimit.redis.duration"])
	for k, v := range want {
		if h[k] != uint64(v) {
			t.Errorf("%s{%s} counts %d, want %d", "ratelimit.redis.duration", k, h[k], v)
		}
	}
	hd := got["ratelimit.redis.duration"]
	if hd.Unit != "s" {
		t.Errorf("%s unit %q, want s", hd.Name, hd.Unit)
	}

	// One span per script call, named after the command and the script;
	// one for the pipeline.
	var names []string
	for _, s := range spans.Ended() {
		status := ""
		if s.Status().Code == codes.Error {
			status = "!" + s.Status().Description
		}
		names = append(names, s.Name()+status)
	}
	wantSpans := []string{
		"EVALSHA gcra!noscript", "EVAL gcra", "EVALSHA gcra", "EVALSHA gcra",
		"EVALSHA gcra!error", "EVALSHA gcra!timeout", "pipeline!noscript",
	}
	if fmt.Sprint(names) != fmt.Sprint(wantSpans) {
		t.Errorf("spans %q, want %q", names, wantSpans)
	}
	for _, s := range spans.Ended()[:1] {
		var script string
		for _, kv := range s.Attributes() {
			if kv.Key == "ratelimit.script" {
				script = kv.Value.AsString()
			}
		}
		if script != "gcra" || s.SpanKind().String() != "client" {
			t.Errorf("span %s: script attribute %q, kind %v; want gcra, client", s.Name(), script, s.SpanKind())
		}
	}
}

// TestRedisHookNoTracer checks that without WithTracerProvider the hook
// starts no span, even when the context carries a recording one.
func TestRedisHookNoTracer(t *testing.T) {
	mp, r := newReader(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	cmd := redis.NewCmd(ctx, "evalsha", scriptSHA(t, "token_bucket_take_up_to"), 1, "k")
	process := hook.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	if err := process(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if n := len(spans.Ended()); n != 1 {
		t.Errorf("%d spans ended, want only the test's own", n)
	}
	assertInts(t, collect(t, r), "ratelimit.redis.calls", map[string]int64{
		"ratelimit.outcome=ok,ratelimit.script=token_bucket_take_up_to": 1,
	})
}

// TestRedisHookAttributes checks that the hook's metrics carry the
// attributes of WithAttributes, and that the package's own keys win over
// the same keys given there.
func TestRedisHookAttributes(t *testing.T) {
	mp, r := newReader(t)
	hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp),
		telemetry.WithAttributes(attribute.String("instance", "a"), attribute.String("ratelimit.script", "mine")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	process := hook.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	if err := process(ctx, redis.NewCmd(ctx, "evalsha", scriptSHA(t, "gcra"), 1, "k")); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"instance=a,ratelimit.outcome=ok,ratelimit.script=gcra": 1}
	assertInts(t, collect(t, r), "ratelimit.redis.calls", want)
}

// TestRedisHookOutcomes checks how errors map to outcomes, with a fake
// next hook.
func TestRedisHookOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{redis.Nil, "ok"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("dial tcp: connection refused"), "error"},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			mp, r := newReader(t)
			hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// Upper case SHA-1s and EVAL_RO are recognised too.
			cmd := redis.NewCmd(ctx, "EVALSHA_RO", strings.ToUpper(scriptSHA(t, "gcra_refund")), 1, "k")
			process := hook.ProcessHook(func(context.Context, redis.Cmder) error { return tc.err })
			if err := process(ctx, cmd); err != tc.err {
				t.Errorf("hook returned %v, want next's %v", err, tc.err)
			}
			assertInts(t, collect(t, r), "ratelimit.redis.calls", map[string]int64{
				"ratelimit.outcome=" + tc.want + ",ratelimit.script=gcra_refund": 1,
			})
		})
	}
}

// TestRedisHookIgnores checks that commands other than the package's
// scripts pass through uncounted.
func TestRedisHookIgnores(t *testing.T) {
	mp, r := newReader(t)
	hook, err := telemetry.NewRedisHook(telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var passed int
	process := hook.ProcessHook(func(context.Context, redis.Cmder) error { passed++; return nil })
	pipeline := hook.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { passed++; return nil })
	for _, cmd := range []redis.Cmder{
		redis.NewCmd(ctx, "get", "k"),
		redis.NewCmd(ctx, "evalsha", strings.Repeat("0", 40), 0),
		redis.NewCmd(ctx, "eval", "return 1", 0),
		redis.NewCmd(ctx, "evalsha"),
		redis.NewCmd(ctx, "evalsha", 42, 0),
	} {
		if err := process(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline(ctx, []redis.Cmder{redis.NewCmd(ctx, "get", "k")}); err != nil {
		t.Fatal(err)
	}
	if passed != 6 {
		t.Errorf("%d commands passed through, want 6", passed)
	}
	if _, ok := collect(t, r)["ratelimit.redis.calls"]; ok {
		t.Error("other commands were counted")
	}
	if h := hook.DialHook(nil); h != nil {
		t.Error("DialHook changed the dialer")
	}
}
