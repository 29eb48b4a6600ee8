package redistest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its tests: a
// stopped server leaves no goroutine waiting on its process, and the
// admin clients of a cluster are closed with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
