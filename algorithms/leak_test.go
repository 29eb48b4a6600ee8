package algorithms

import (
	"testing"

	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

// TestMain fails the package if any goroutine outlives its tests, and
// keeps go-redis quiet (see limitertest.Main).
func TestMain(m *testing.M) { limitertest.Main(m) }
