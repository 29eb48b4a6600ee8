package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them: every load loop,
// view, server and limiter of a run must have stopped when run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
