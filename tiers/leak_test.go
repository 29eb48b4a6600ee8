package tiers_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its tests: the
// leasing limiters a tiers.Limiter makes are closed by its Close, and the
// config watcher stops with its context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
