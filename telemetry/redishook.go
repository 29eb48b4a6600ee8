package telemetry

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/distributedratelimiter/ratelimit/algorithms"
)

// Span attribute keys of the hook's spans, from OpenTelemetry's
// database conventions.
const (
	attrDBSystem    attribute.Key = "db.system.name"
	attrDBOperation attribute.Key = "db.operation.name"
	attrBatchSize   attribute.Key = "db.operation.batch.size"
)

// outcome is how a Redis call ended: its ratelimit.outcome.
type outcome uint8

const (
	outcomeOK       outcome = iota // Redis replied (a nil reply included)
	outcomeError                   // an error reply or a connection failure
	outcomeTimeout                 // a deadline passed
	outcomeNoScript                // EVALSHA of a script not cached; go-redis retries with EVAL
	outcomeCanceled                // the caller's context was cancelled
	numOutcomes
)

// String returns the ratelimit.outcome value of o.
func (o outcome) String() string {
	return [numOutcomes]string{"ok", "error", "timeout", "noscript", "canceled"}[o]
}

// redisHook is the hook of [NewRedisHook].
type redisHook struct {
	calls  metric.Int64Counter
	dur    metric.Float64Histogram
	tracer trace.Tracer         // nil: no spans
	attrs  []attribute.KeyValue // WithAttributes

	scripts sync.Map // script name → *scriptTelemetry, made on first use
}

var _ redis.Hook = (*redisHook)(nil)

// scriptTelemetry holds the precomputed options of one script.
type scriptTelemetry struct {
	name     string
	add      [numOutcomes][]metric.AddOption
	record   [numOutcomes][]metric.RecordOption
	spanOpts [2][]trace.SpanStartOption // EVALSHA, EVAL
	spanName [2]string
}

// NewRedisHook returns a go-redis hook that counts and times the Redis
// calls of the algorithms package's Lua scripts (EVAL and EVALSHA,
// read-only variants included), by script and outcome, as
// ratelimit.redis.calls and ratelimit.redis.duration on the
// [WithMeterProvider] provider's meter, and, with [WithTracerProvider],
// starts a client span per call. Other commands pass through untouched.
// It returns the errors of creating the instruments. Install the hook on
// the client the limiters use:
//
//	hook, err := telemetry.NewRedisHook()
//	...
//	rdb.AddHook(hook)
//
// Most leased decisions make no Redis call, so the hook sees the refills,
// returns and per-request checks, not the decisions.
//
// The hook is safe for concurrent use, and one may serve several clients.
func NewRedisHook(opts ...HookOption) (redis.Hook, error) {
	c := newConfig(opts, HookOption.applyHook)
	m := c.meter()
	h := &redisHook{attrs: c.attrs}
	var err1, err2 error
	h.calls, err1 = m.Int64Counter(metricRedisCalls,
		metric.WithUnit(unitCall),
		metric.WithDescription("Redis calls of the rate limiter's scripts, by script and outcome."))
	h.dur, err2 = m.Float64Histogram(metricRedisDuration,
		metric.WithUnit(unitSeconds),
		metric.WithDescription("Duration of the Redis calls of the rate limiter's scripts, round trip included."),
		metric.WithExplicitBucketBoundaries(redisBuckets...))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("telemetry: instruments: %w", err)
	}
	if c.tp != nil {
		h.tracer = c.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(moduleVersion()))
	}
	return h, nil
}

// DialHook passes dials through.
func (h *redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts, times and traces the calls of the package's scripts.
func (h *redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		st, op := h.script(cmd)
		if st == nil {
			return next(ctx, cmd)
		}
		var span trace.Span
		if h.tracer != nil {
			ctx, span = h.tracer.Start(ctx, st.spanName[op], st.spanOpts[op]...)
		}
		start := time.Now()
		err := next(ctx, cmd)
		elapsed := time.Since(start)
		oc := outcomeOf(err)
		h.calls.Add(ctx, 1, st.add[oc]...)
		h.dur.Record(ctx, elapsed.Seconds(), st.record[oc]...)
		if span != nil {
			endSpan(span, err, oc)
		}
		return err
	}
}

// ProcessPipelineHook counts each script call in a pipeline or
// transaction, with the duration of the whole round trip, and traces the
// round trip as one span.
func (h *redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ours := 0
		for _, cmd := range cmds {
			if st, _ := h.script(cmd); st != nil {
				ours++
			}
		}
		if ours == 0 {
			return next(ctx, cmds)
		}
		var span trace.Span
		if h.tracer != nil {
			ctx, span = h.tracer.Start(ctx, "pipeline", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attrDBSystem.String("redis"), attrDBOperation.String("PIPELINE"), attrBatchSize.Int(len(cmds))))
		}
		start := time.Now()
		err := next(ctx, cmds)
		elapsed := time.Since(start).Seconds()
		for _, cmd := range cmds {
			if st, _ := h.script(cmd); st != nil {
				oc := outcomeOf(cmd.Err())
				h.calls.Add(ctx, 1, st.add[oc]...)
				h.dur.Record(ctx, elapsed, st.record[oc]...)
			}
		}
		if span != nil {
			endSpan(span, err, outcomeOf(err))
		}
		return err
	}
}

func endSpan(span trace.Span, err error, oc outcome) {
	if oc != outcomeOK {
		span.RecordError(err)
		span.SetStatus(codes.Error, oc.String())
	}
	span.End()
}

// script returns the telemetry of cmd's script, and 0 for EVALSHA or 1 for
// EVAL; or nil if cmd is not a call of one of the package's scripts.
func (h *redisHook) script(cmd redis.Cmder) (*scriptTelemetry, int) {
	var op int
	switch cmd.Name() {
	case "evalsha", "evalsha_ro":
		op = 0
	case "eval", "eval_ro":
		op = 1
	default:
		return nil, 0
	}
	args := cmd.Args()
	if len(args) < 2 {
		return nil, 0
	}
	s, ok := args[1].(string)
	if !ok {
		return nil, 0
	}
	if op == 1 { // EVAL carries the source: rare, after NOSCRIPT
		sum := sha1.Sum([]byte(s))
		s = hex.EncodeToString(sum[:])
	}
	name, ok := algorithms.ScriptName(s)
	if !ok {
		if name, ok = algorithms.ScriptName(strings.ToLower(s)); !ok {
			return nil, 0
		}
	}
	if v, ok := h.scripts.Load(name); ok {
		return v.(*scriptTelemetry), op
	}
	v, _ := h.scripts.LoadOrStore(name, newScriptTelemetry(name, h.attrs))
	return v.(*scriptTelemetry), op
}

// newScriptTelemetry returns the telemetry of the script called name, whose
// metrics carry base, then the script and outcome attributes.
func newScriptTelemetry(name string, base []attribute.KeyValue) *scriptTelemetry {
	st := &scriptTelemetry{name: name}
	for oc := range numOutcomes {
		set := withAttrs(base, attrScript.String(name), attrOutcome.String(oc.String()))
		st.add[oc] = []metric.AddOption{metric.WithAttributeSet(set)}
		st.record[oc] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}
	for i, op := range [2]string{"EVALSHA", "EVAL"} {
		st.spanName[i] = op + " " + name
		st.spanOpts[i] = []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attrDBSystem.String("redis"), attrDBOperation.String(op), attrScript.String(name)),
		}
	}
	return st
}

// outcomeOf returns how a call that returned err ended.
func outcomeOf(err error) outcome {
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, redis.Nil):
		return outcomeOK
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return outcomeTimeout
	case errors.Is(err, context.Canceled):
		return outcomeCanceled
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return outcomeNoScript
	}
	return outcomeError
}
