package algorithms

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// quietRedis drops go-redis's own log lines: the fault tests make it fail
// to dial on purpose.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// TestMain fails the package if any goroutine outlives its tests: every
// client, server and limiter a test starts must be released by its
// cleanups, including the goroutines internal/rcall starts for clients
// without ContextTimeoutEnabled, which end once their late reply comes.
func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	goleak.VerifyTestMain(m, ignoreDialProbe)
}

// ignoreDialProbe ignores go-redis's dial probe: once dials to a node keep
// failing (a killed server, a crashed cluster master), its pool starts a
// goroutine that retries once a second until a dial succeeds or, at its
// next wake-up, the pool is closed. A client closed at cleanup therefore
// leaves it for up to a second, longer than goleak waits.
var ignoreDialProbe = goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")
