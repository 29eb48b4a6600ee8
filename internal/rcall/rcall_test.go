package rcall

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// generous bounds how long Do may take to return once its deadline has
// passed. It is far above any scheduling delay, so a slow machine cannot
// fail a test, and far below the time a blocked fn takes.
const generous = 2 * time.Second

func TestDoReturnsResult(t *testing.T) {
	boom := errors.New("boom")
	for _, honorsDeadline := range []bool{true, false} {
		for _, tt := range []struct {
			name string
			v    int
			err  error
		}{
			{"value", 42, nil},
			{"error", 7, boom},
		} {
			t.Run(fmt.Sprintf("honorsDeadline=%v/%s", honorsDeadline, tt.name), func(t *testing.T) {
				v, err := Do(context.Background(), time.Second, honorsDeadline, func(ctx context.Context) (int, error) {
					if _, ok := ctx.Deadline(); !ok {
						t.Error("fn's context has no deadline")
					}
					return tt.v, tt.err
				})
				if v != tt.v || err != tt.err {
					t.Fatalf("honorsDeadline=%v: Do = %d, %v; want %d, %v", honorsDeadline, v, err, tt.v, tt.err)
				}
			})
		}
	}
}

func TestDoNoTimeoutUsesCallerContext(t *testing.T) {
	for _, honorsDeadline := range []bool{true, false} {
		_, err := Do(context.Background(), 0, honorsDeadline, func(ctx context.Context) (struct{}, error) {
			if _, ok := ctx.Deadline(); ok {
				t.Errorf("honorsDeadline=%v: timeout 0 added a deadline", honorsDeadline)
			}
			return struct{}{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestDoTimeoutShorterThanContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, honorsDeadline := range []bool{true, false} {
		_, err := Do(ctx, time.Minute, honorsDeadline, func(fctx context.Context) (int, error) {
			dl, ok := fctx.Deadline()
			if !ok || time.Until(dl) > time.Minute {
				t.Errorf("honorsDeadline=%v: fn's deadline %v is not the 1m timeout", honorsDeadline, dl)
			}
			return 0, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestDoAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, honorsDeadline := range []bool{true, false} {
		var called atomic.Bool
		v, err := Do(ctx, time.Second, honorsDeadline, func(context.Context) (int, error) {
			called.Store(true)
			return 1, nil
		})
		if !errors.Is(err, context.Canceled) || v != 0 {
			t.Errorf("honorsDeadline=%v: Do = %d, %v; want 0, context.Canceled", honorsDeadline, v, err)
		}
		if called.Load() {
			t.Errorf("honorsDeadline=%v: fn ran on a cancelled context", honorsDeadline)
		}
	}
}

// TestDoInlineReportsDeadline checks that an fn run on the calling
// goroutine (honorsDeadline) failing because of the deadline is reported as
// the deadline, not as its own error.
func TestDoInlineReportsDeadline(t *testing.T) {
	_, err := Do(context.Background(), 10*time.Millisecond, true, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, errors.New("i/o timeout")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// TestDoAbandonsBlockedFn runs an fn that ignores its context and blocks
// long past the deadline: Do must return at the deadline, drop the late
// result, and leave no goroutine once fn finishes.
func TestDoAbandonsBlockedFn(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
		want    error
	}{
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, 20 * time.Millisecond, context.DeadlineExceeded},
		{"context deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, time.Hour, context.DeadlineExceeded},
		{"context cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			release := make(chan struct{})
			finished := make(chan struct{})
			ctx, cancel := tt.ctx()
			defer cancel()

			start := time.Now()
			v, err := Do(ctx, tt.timeout, false, func(context.Context) (string, error) {
				defer close(finished)
				<-release // ignores its context, like a client without ContextTimeoutEnabled
				return "late", nil
			})
			elapsed := time.Since(start)
			if !errors.Is(err, tt.want) || v != "" {
				t.Fatalf("Do = %q, %v; want \"\", %v", v, err, tt.want)
			}
			if elapsed > generous {
				t.Fatalf("Do returned %v after it was called, want about 20ms", elapsed)
			}

			// The late result goes into the buffered channel and is
			// dropped; fn's goroutine then exits.
			close(release)
			<-finished
			goleak.VerifyNone(t, ignore)
		})
	}
}

// TestDoNoLeakAfterManyAbandonedCalls checks that abandoned calls never
// leave a goroutine blocked on sending their result.
func TestDoNoLeakAfterManyAbandonedCalls(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	release := make(chan struct{})
	var done atomic.Int32
	const calls = 50
	for range calls {
		_, err := Do(context.Background(), time.Millisecond, false, func(context.Context) (int, error) {
			defer done.Add(1)
			<-release
			return 1, nil
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for done.Load() < calls && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	goleak.VerifyNone(t, ignore)
}

// dummyScripter is a redis.Scripter that is none of go-redis's clients.
type dummyScripter struct{ redis.Scripter }

func TestHonorsDeadline(t *testing.T) {
	withCTE := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	without := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	clusterWithout := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}, ContextTimeoutEnabled: true})
	ringWithout := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer func() {
		for _, c := range []interface{ Close() error }{withCTE, without, cluster, clusterWithout, ring, ringWithout} {
			_ = c.Close()
		}
	}()

	tests := []struct {
		name string
		rdb  redis.Scripter
		want bool
	}{
		{"client with ContextTimeoutEnabled", withCTE, true},
		{"client without", without, false},
		{"cluster with ContextTimeoutEnabled", cluster, true},
		{"cluster without", clusterWithout, false},
		{"ring with ContextTimeoutEnabled", ring, true},
		{"ring without", ringWithout, false},
		{"other Scripter", dummyScripter{}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := HonorsDeadline(tt.rdb); got != tt.want {
			t.Errorf("%s: HonorsDeadline = %v, want %v", tt.name, got, tt.want)
		}
	}
}
