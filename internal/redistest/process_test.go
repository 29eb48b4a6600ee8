package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartProcess(t *testing.T) {
	Binary(t) // skip or fail as the package doc says when it is missing
	p, err := StartProcess(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if p.Port() == 6379 {
		t.Fatalf("started on the default port %d", p.Port())
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}
	p.Stop()
	if err := ping(p.Addr()); err == nil {
		t.Fatal("server still answers after Stop")
	}
	p.Stop() // a second Stop is a no-op
}
