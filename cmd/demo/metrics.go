package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/distributedratelimiter/ratelimit/telemetry"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// metrics exports the telemetry package's OpenTelemetry metrics through
// the SDK (-metrics): to stdout when the demo ends, or on a Prometheus
// /metrics endpoint while it runs. A nil *metrics is off: it instruments
// nothing.
type metrics struct {
	w    io.Writer
	kind string
	mp   *sdkmetric.MeterProvider
	hk   redis.Hook
	srv  *http.Server // Prometheus endpoint

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

// factory returns f with every limiter it makes instrumented
// (telemetry.Factory), with instance, when positive, as the demo.instance
// attribute: the simulated instances share one meter provider, and their
// gauges must not overwrite each other. A nil *metrics returns f.
func (m *metrics) factory(f tiers.Factory, instance int) tiers.Factory {
	if m == nil {
		return f
	}
	opts := []telemetry.FactoryOption{telemetry.WithMeterProvider(m.mp)}
	if instance > 0 {
		opts = append(opts, telemetry.WithAttributes(attrInstance.Int(instance)))
	}
	return telemetry.Factory(f, opts...)
}

// attrInstance tells the simulated instances apart in the metrics.
const attrInstance attribute.Key = "demo.instance"

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
