package telemetry_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/distributedratelimiter/ratelimit/telemetry"
)

// TestGlobalProviderLateBinding checks the default provider: a Limiter
// made before the application installs an SDK records once it is
// installed. It runs in a child process, since the global provider can be
// set only once per process.
func TestGlobalProviderLateBinding(t *testing.T) {
	if os.Getenv("TELEMETRY_GLOBAL_CHILD") == "1" {
		globalChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGlobalProviderLateBinding$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "TELEMETRY_GLOBAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "late binding ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func globalChild(t *testing.T) {
	l, err := telemetry.Wrap(constLimiter{allowedLocal}, telemetry.WithLimit("g", ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		_, _ = l.Allow(ctx, "k")
	}
	mp, r := newReader(t)
	otel.SetMeterProvider(mp)
	_, _ = l.Allow(ctx, "k")
	pts := ints(t, collect(t, r)["ratelimit.decisions"])
	if v := pts["ratelimit.result=allowed,ratelimit.source=local,ratelimit.tier=g"]; v != 4 {
		t.Fatalf("allowed/local = %d after installing the SDK, want all 4 decisions (points %v)", v, pts)
	}
	t.Log("late binding ok")
}
