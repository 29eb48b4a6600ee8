package ratelimit_test

import (
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

func TestSystemClock(t *testing.T) {
	var c ratelimit.Clock = ratelimit.SystemClock{}
	before := time.Now()
	now := c.Now()
	if now.Before(before) || now.After(time.Now()) {
		t.Fatalf("SystemClock.Now() = %v, not between the reads around it", now)
	}
}
