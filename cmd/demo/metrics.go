package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/telemetry"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// metrics exports the telemetry package's OpenTelemetry metrics through
// the SDK (-metrics): to stdout when the demo ends, or on a Prometheus
// /metrics endpoint while it runs. A nil *metrics is off: it wraps
// nothing. Not safe for concurrent use; the demo builds its limiters one
// at a time.
type metrics struct {
	w    io.Writer
	kind string
	mp   *sdkmetric.MeterProvider
	hk   *telemetry.RedisHook
	srv  *http.Server // Prometheus endpoint

	leases []*leaseGroup // this mode's leasing limiters, by tier and limit
	regs   []metric.Registration

	out     bytes.Buffer // stdout: the exports, printed at shutdown
	discard atomic.Bool  // stdout: drop exports (the one Shutdown makes)
}

// newMetrics sets up the exporter o asks for, or returns nil.
func newMetrics(o options, w io.Writer) (*metrics, error) {
	if o.metrics == metricsOff {
		return nil, nil
	}
	m := &metrics{w: w, kind: o.metrics}
	var reader sdkmetric.Reader
	switch o.metrics {
	case metricsStdout:
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(exportWriter{m}), stdoutmetric.WithPrettyPrint())
		if err != nil {
			return nil, err
		}
		// Exports come from flush at the end of each mode, while the
		// limiters still report, and are printed after the summary:
		// periodic dumps would bury the live view.
		reader = sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(24*time.Hour))
	case metricsPrometheus:
		reg := promclient.NewRegistry()
		exp, err := prometheus.New(prometheus.WithRegisterer(reg))
		if err != nil {
			return nil, err
		}
		reader = exp
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return nil, fmt.Errorf("-metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go m.srv.Serve(ln)
		fmt.Fprintf(w, "Prometheus metrics at http://%s/metrics while the demo runs\n", ln.Addr())
	}
	m.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var err error
	if m.hk, err = telemetry.NewRedisHook(telemetry.WithMeterProvider(m.mp)); err != nil {
		m.shutdown(context.Background())
		return nil, err
	}
	return m, nil
}

// instrument wraps l, the limiter of spec s, to record its decisions, and
// keeps leasing limiters for observe.
func (m *metrics) instrument(s tiers.Spec, l ratelimit.Limiter) (ratelimit.Limiter, error) {
	if m == nil {
		return l, nil
	}
	if ll, ok := l.(*lease.Limiter); ok {
		m.group(s).ls = append(m.group(s).ls, ll)
	}
	return telemetry.Wrap(l, telemetry.WithMeterProvider(m.mp),
		telemetry.WithTier(s.Tier), telemetry.WithLimitName(s.Limit.Name))
}

func (m *metrics) group(s tiers.Spec) *leaseGroup {
	for _, g := range m.leases {
		if g.tier == s.Tier && g.limit == s.Limit.Name {
			return g
		}
	}
	g := &leaseGroup{tier: s.Tier, limit: s.Limit.Name}
	m.leases = append(m.leases, g)
	return g
}

// observe reports the running totals of this mode's leasing limiters,
// summed over the instances, until endMode.
func (m *metrics) observe() error {
	if m == nil {
		return nil
	}
	for _, g := range m.leases {
		reg, err := telemetry.ObserveLease(g, telemetry.WithMeterProvider(m.mp),
			telemetry.WithTier(g.tier), telemetry.WithLimitName(g.limit))
		if err != nil {
			return err
		}
		m.regs = append(m.regs, reg)
	}
	return nil
}

// flush exports the metrics now, before the limiters of a mode close
// (closing stops their reporting); label names the moment.
func (m *metrics) flush(label string) {
	if m == nil || m.kind != metricsStdout {
		return
	}
	fmt.Fprintf(&m.out, "\nOpenTelemetry metrics at the end of %s (stdoutmetric exporter, totals since the start):\n", label)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.mp.ForceFlush(ctx)
}

// endMode stops observing this mode's leasing limiters.
func (m *metrics) endMode() {
	if m == nil {
		return
	}
	for _, r := range m.regs {
		r.Unregister()
	}
	m.regs, m.leases = nil, nil
}

// hook returns the go-redis hook that records script calls, or nil.
func (m *metrics) hook() redis.Hook {
	if m == nil {
		return nil
	}
	return m.hk
}

// shutdown stops the endpoint and flushes the exporter: with stdout, the
// metrics are printed now.
func (m *metrics) shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []error
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	}
	if m.mp != nil {
		m.discard.Store(true)
		errs = append(errs, m.mp.Shutdown(ctx))
	}
	m.w.Write(m.out.Bytes())
	return errors.Join(errs...)
}

// exportWriter is where the stdout exporter writes: m.out.
type exportWriter struct{ m *metrics }

func (e exportWriter) Write(p []byte) (int, error) {
	if e.m.discard.Load() {
		return len(p), nil
	}
	return e.m.out.Write(p)
}

// leaseGroup is the leasing limiters of one limit, one per instance, seen
// as one for telemetry.ObserveLease: their totals are summed, as a fleet
// would report them.
type leaseGroup struct {
	tier, limit string
	ls          []*lease.Limiter
}

var _ telemetry.LeaseStats = (*leaseGroup)(nil)

// Stats returns the sum of every int64 field of the limiters' Stats.
func (g *leaseGroup) Stats() lease.Stats {
	var sum lease.Stats
	sv := reflect.ValueOf(&sum).Elem()
	for _, l := range g.ls {
		v := reflect.ValueOf(l.Stats())
		for i := range v.NumField() {
			if f := sv.Field(i); f.Kind() == reflect.Int64 && f.CanSet() {
				f.SetInt(f.Int() + v.Field(i).Int())
			}
		}
	}
	return sum
}

// Limit returns the limit the limiters enforce.
func (g *leaseGroup) Limit() ratelimit.Limit { return g.ls[0].Limit() }
