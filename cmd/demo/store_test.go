package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestCallCounter(t *testing.T) {
	c := newCallCounter("demo:x:l:", []string{"free", "pro"})
	ctx := context.Background()
	for _, cmd := range []redis.Cmder{
		redis.NewCmd(ctx, "evalsha", "abc", 1, "demo:x:l:free:second:{c:alice}:token_bucket", 1),
		redis.NewCmd(ctx, "eval", "return 1", 1, "demo:x:l:pro:second:{c:pro-1}:token_bucket"),
		redis.NewCmd(ctx, "evalsha", "abc", 1, "demo:x:l:gold:second:{c:g}:token_bucket"),
		redis.NewCmd(ctx, "evalsha", "abc", 1, "other:free:second:{c:a}:gcra"),
		redis.NewCmd(ctx, "get", "demo:x:l:free:second:{c:alice}:token_bucket"),
		redis.NewCmd(ctx, "ping"),
	} {
		c.count(cmd)
	}
	if c.total.Load() != 4 || c.tierCalls(0) != 1 || c.tierCalls(1) != 1 || c.tierCalls(2) != 2 {
		t.Errorf("total %d, free %d, pro %d, other %d; want 4, 1, 1, 2",
			c.total.Load(), c.tierCalls(0), c.tierCalls(1), c.tierCalls(2))
	}
}

func TestDialLoopbackOnly(t *testing.T) {
	s := &store{}
	_, err := s.dial(context.Background(), "tcp", "192.0.2.1:6379")
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("dial of a remote address: %v", err)
	}
	// A loopback address is dialled (nothing listens on port 1).
	if _, err = s.dial(context.Background(), "tcp", "127.0.0.1:1"); err == nil || strings.Contains(err.Error(), "loopback") {
		t.Errorf("dial of 127.0.0.1:1: %v", err)
	}
}
