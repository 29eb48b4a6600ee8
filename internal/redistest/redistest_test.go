package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStartKillRestartPause(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, Prefix(t)+"k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}

	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	if n := c.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("restarted server has %d keys, want 0", n)
	}

	s.Pause(300 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.Ping(short).Err(); err == nil {
		t.Fatal("PING answered during CLIENT PAUSE")
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after pause: %v", err)
	}
}

func TestPrefixUnique(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	if a == b {
		t.Fatalf("Prefix returned %q twice", a)
	}
}
