package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/breaker"
)

// reply is a Redis error reply, as go-redis returns it.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

func store(err error) error { return &ratelimit.StoreError{Op: "gcra", Key: "k", Err: err} }

func TestIsFailure(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{store(context.Canceled), false},
		{context.DeadlineExceeded, true},
		{store(context.DeadlineExceeded), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{store(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{io.EOF, true},
		{redis.ErrPoolTimeout, true},
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{store(reply("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.")), true},
		{reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{reply("CLUSTERDOWN The cluster is down"), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("NOREPLICAS Not enough good replicas to write."), true},
		{reply("OOM command not allowed when used memory > 'maxmemory'."), true},
		{reply("ERR max number of clients reached"), true},
		{reply("ERR Error running script (call to f_0123): @user_script:1: oops"), false},
		{store(reply("WRONGTYPE Operation against a key holding the wrong kind of value")), false},
		{reply("BUSYKEY Target key name already exists."), false},
		{reply("NOSCRIPT No matching script. Please use EVAL."), false},
		{store(fmt.Errorf("%w: want 2 integers", ratelimit.ErrBadReply)), false},
		{ratelimit.ValidateKey(""), false},
		{ratelimit.ErrInvalidLimit, false},
		{ratelimit.ErrInvalidN, false},
		{ratelimit.ErrClosed, false},
		{redis.ErrClosed, false},
		{errors.New("something unforeseen"), true},
	}
	for _, tt := range tests {
		if got := breaker.IsFailure(tt.err); got != tt.want {
			t.Errorf("IsFailure(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestIsFailureRealErrors classifies errors that a go-redis client really
// returns: an error reply, a refused connection, a server that never
// answers.
func TestIsFailureRealErrors(t *testing.T) {
	ctx := context.Background()
	client := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true, DialTimeout: time.Second})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	mr := miniredis.RunT(t)
	c := client(mr.Addr())
	err := c.Eval(ctx, "return redis.error_reply('boom')", nil).Err()
	if err == nil || breaker.IsFailure(err) {
		t.Errorf("script error %v: IsFailure = true or no error", err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err = c.LPush(ctx, "k", "x").Err()
	if err == nil || breaker.IsFailure(err) {
		t.Errorf("WRONGTYPE %v: IsFailure = true or no error", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = client(addr).Ping(ctx).Err()
	if err == nil || !breaker.IsFailure(err) {
		t.Errorf("refused connection %v: IsFailure = false or no error", err)
	}

	// A listener that accepts but never replies: the call ends at its
	// deadline.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		for {
			conn, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, conn)
		}
	}()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = client(ln.Addr().String()).Ping(short).Err()
	if err == nil || !breaker.IsFailure(err) {
		t.Errorf("silent server %v: IsFailure = false or no error", err)
	}
}
