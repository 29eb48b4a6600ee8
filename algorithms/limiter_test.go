package algorithms

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
)

// replyScripter is a redis.Scripter on which every script replies val, or
// fails with err. It counts the calls.
type replyScripter struct {
	redis.Scripter // nil: only EvalSha is used
	val            any
	err            error
	calls          atomic.Int32
}

func (f *replyScripter) EvalSha(ctx context.Context, _ string, _ []string, _ ...any) *redis.Cmd {
	f.calls.Add(1)
	cmd := redis.NewCmd(ctx)
	if f.err != nil {
		cmd.SetErr(f.err)
	} else {
		cmd.SetVal(f.val)
	}
	return cmd
}

// okReply is a well-formed reply: allowed, 0 remaining.
var okReply = []any{int64(1), int64(0), int64(0), int64(1000)}

func TestNewLimiterValidation(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	for _, lim := range []ratelimit.Limit{
		{},
		{Rate: 0, Period: time.Second, Burst: 1},
		{Rate: -1, Period: time.Second, Burst: 1},
		{Rate: 1, Period: 0, Burst: 1},
		{Rate: 1, Period: -time.Second, Burst: 1},
		{Rate: 1, Period: time.Second, Burst: 0},
		{Rate: 1, Period: time.Second, Burst: -1},
		{Rate: ratelimit.MaxRate + 1, Period: time.Second, Burst: 1},
	} {
		if _, err := NewLimiter(rdb, lim); !errors.Is(err, ratelimit.ErrInvalidLimit) {
			t.Errorf("NewLimiter(%+v): error %v, want ErrInvalidLimit", lim, err)
		}
	}
	if _, err := NewLimiter(rdb, ratelimit.PerSecond(1)); err != nil {
		t.Errorf("NewLimiter(valid): %v", err)
	}
}

// TestCallValidation checks that AllowN and RefundN reject bad keys and
// counts with the right sentinel, before calling Redis.
func TestCallValidation(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	l := newLimiter(t, rdb, ratelimit.PerSecond(10).WithBurst(5))
	calls := []struct {
		name string
		call func(key string, n int) error
	}{
		{"AllowN", func(key string, n int) error { _, err := l.AllowN(t.Context(), key, n); return err }},
		{"RefundN", func(key string, n int) error { return l.RefundN(t.Context(), key, n) }},
	}
	cases := []struct {
		key  string
		n    int
		want error
	}{
		{"", 1, ratelimit.ErrInvalidKey},
		{strings.Repeat("k", ratelimit.MaxKeyLen+1), 1, ratelimit.ErrInvalidKey},
		{"k", 0, ratelimit.ErrInvalidN},
		{"k", -1, ratelimit.ErrInvalidN},
		{"k", 6, ratelimit.ErrInvalidN}, // above the burst
	}
	for _, c := range calls {
		for _, tc := range cases {
			if err := c.call(tc.key, tc.n); !errors.Is(err, tc.want) {
				t.Errorf("%s(key of %d bytes, n=%d): error %v, want %v", c.name, len(tc.key), tc.n, err, tc.want)
			}
		}
	}
	if n := rdb.calls.Load(); n != 0 {
		t.Fatalf("invalid calls reached Redis %d times", n)
	}
	for _, c := range calls {
		for _, n := range []int{1, 5} {
			if err := c.call(strings.Repeat("k", ratelimit.MaxKeyLen), n); err != nil {
				t.Errorf("%s(key of MaxKeyLen bytes, n=%d): %v", c.name, n, err)
			}
		}
	}
	if n := rdb.calls.Load(); n != 4 {
		t.Fatalf("valid calls reached Redis %d times, want 4", n)
	}
	for _, n := range []int{0, -1} {
		if _, err := TakeUpTo(t.Context(), rdb, "k", ratelimit.PerSecond(1), n); !errors.Is(err, ratelimit.ErrInvalidN) {
			t.Errorf("TakeUpTo(n=%d): error %v, want ErrInvalidN", n, err)
		}
		if _, err := ReturnN(t.Context(), rdb, "k", ratelimit.PerSecond(1), n); !errors.Is(err, ratelimit.ErrInvalidN) {
			t.Errorf("ReturnN(n=%d): error %v, want ErrInvalidN", n, err)
		}
	}
}

// noRefund is an Algorithm that cannot refund.
type noRefund struct{ Algorithm }

func TestRefundUnsupported(t *testing.T) {
	rdb := &replyScripter{val: okReply}
	l := newLimiter(t, rdb, ratelimit.PerSecond(1), WithAlgorithm(noRefund{GCRA}))
	if err := l.RefundN(t.Context(), "k", 1); !errors.Is(err, ErrRefundUnsupported) {
		t.Fatalf("RefundN with an algorithm that cannot refund: %v", err)
	}
}

func TestParseReply(t *testing.T) {
	errScript := errors.New("ERR script failed")
	for _, tc := range []struct {
		name string
		val  any
		err  error
		want error // nil: a valid reply
	}{
		{"four integers", okReply, nil, nil},
		{"redis error", nil, errScript, errScript},
		// go-redis reports a nil reply as the error redis.Nil.
		{"nil reply", nil, redis.Nil, ratelimit.ErrBadReply},
		{"not an array", "OK", nil, ratelimit.ErrBadReply},
		{"an integer", int64(1), nil, ratelimit.ErrBadReply},
		{"nil", nil, nil, ratelimit.ErrBadReply},
		{"three integers", []any{int64(1), int64(2), int64(3)}, nil, ratelimit.ErrBadReply},
		{"five integers", []any{int64(1), int64(2), int64(3), int64(4), int64(5)}, nil, ratelimit.ErrBadReply},
		{"a string element", []any{int64(1), "two", int64(3), int64(4)}, nil, ratelimit.ErrBadReply},
		{"a nil element", []any{int64(1), nil, int64(3), int64(4)}, nil, ratelimit.ErrBadReply},
		{"a nested array", []any{int64(1), []any{int64(2)}, int64(3), int64(4)}, nil, ratelimit.ErrBadReply},
		{"negative", []any{int64(1), int64(-2), int64(3), int64(4)}, nil, ratelimit.ErrBadReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := redis.NewCmd(t.Context())
			if tc.err != nil {
				cmd.SetErr(tc.err)
			} else {
				cmd.SetVal(tc.val)
			}
			r, err := parseReply(cmd)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("parseReply(%#v): %v, %v; want error %v", tc.val, r, err, tc.want)
			}
			if tc.want == nil && r != (reply{1, 0, 0, 1000}) {
				t.Fatalf("parseReply(%#v) = %v", tc.val, r)
			}
		})
	}
}

// TestWrongShapeReplies checks every entry point against replies of the
// wrong shape: an error matching ErrBadReply (and ErrStore through the
// Limiter), never a panic.
func TestWrongShapeReplies(t *testing.T) {
	for _, tc := range []struct {
		val       any
		badRefund bool // a refund reply has no allowed flag
	}{
		{"OK", true},
		{[]any{int64(1), int64(2)}, true},
		{[]any{"x", int64(0), int64(0), int64(0)}, true},
		{[]any{int64(2), int64(0), int64(0), int64(0)}, false}, // allowed flag 2
	} {
		rdb := &replyScripter{val: tc.val}
		for _, alg := range All {
			l := newLimiter(t, rdb, ratelimit.PerSecond(1), WithAlgorithm(alg))
			_, err := l.Allow(t.Context(), "k")
			if !errors.Is(err, ratelimit.ErrBadReply) || !errors.Is(err, ratelimit.ErrStore) {
				t.Errorf("%s: Allow with reply %#v: error %v, want ErrBadReply and ErrStore", alg.Name(), tc.val, err)
			}
			err = l.RefundN(t.Context(), "k", 1)
			if tc.badRefund && (!errors.Is(err, ratelimit.ErrBadReply) || !errors.Is(err, ratelimit.ErrStore)) {
				t.Errorf("%s: RefundN with reply %#v: error %v, want ErrBadReply and ErrStore", alg.Name(), tc.val, err)
			}
			if !tc.badRefund && err != nil {
				t.Errorf("%s: RefundN with reply %#v: %v", alg.Name(), tc.val, err)
			}
		}
	}
	nilReply := &replyScripter{err: redis.Nil} // go-redis's nil reply
	for _, alg := range All {
		l := newLimiter(t, nilReply, ratelimit.PerSecond(1), WithAlgorithm(alg))
		if _, err := l.Allow(t.Context(), "k"); !errors.Is(err, ratelimit.ErrBadReply) || !errors.Is(err, ratelimit.ErrStore) {
			t.Errorf("%s: Allow with a nil reply: error %v, want ErrBadReply and ErrStore", alg.Name(), err)
		}
	}
	rdb := &replyScripter{val: []any{int64(3), int64(0), int64(0), int64(0)}}
	if _, err := TakeUpTo(t.Context(), rdb, "k", ratelimit.PerSecond(5), 2); !errors.Is(err, ratelimit.ErrBadReply) {
		t.Errorf("TakeUpTo granting 3 of 2: error %v, want ErrBadReply", err)
	}
}

// TestWrongKeyType puts values of the wrong type and corrupt state at the
// exact Redis key a Limiter uses, on a real server: every call fails with
// ErrStore.
func TestWrongKeyType(t *testing.T) {
	_, rdb, ks := realServer(t)
	ctx := t.Context()
	firstField := map[string]string{"token_bucket": "t", "gcra": "t", "fixed_window": "w", "sliding_window": "w"}
	for _, alg := range All {
		l := newLimiter(t, rdb, ratelimit.PerSecond(5), WithAlgorithm(alg), WithKeyspace(ks))
		for _, tc := range []struct {
			name    string
			set     func(rkey string) error
			message string
		}{
			{"string", func(rkey string) error { return rdb.Set(ctx, rkey, "x", 0).Err() }, "WRONGTYPE"},
			{"list", func(rkey string) error { return rdb.RPush(ctx, rkey, "x").Err() }, "WRONGTYPE"},
			{"corrupt hash", func(rkey string) error { return rdb.HSet(ctx, rkey, firstField[alg.Name()], "x").Err() }, "corrupt"},
		} {
			key := "wrong-" + tc.name
			rkey := clientKey(t, ks, key, alg)
			if err := tc.set(rkey); err != nil {
				t.Fatal(err)
			}
			_, err := l.Allow(ctx, key)
			if !errors.Is(err, ratelimit.ErrStore) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("%s: Allow on a %s: error %v, want ErrStore mentioning %s", alg.Name(), tc.name, err, tc.message)
			}
			if err := l.RefundN(ctx, key, 1); !errors.Is(err, ratelimit.ErrStore) {
				t.Errorf("%s: RefundN on a %s: error %v, want ErrStore", alg.Name(), tc.name, err)
			}
		}
	}
}

// TestContextEnds checks that a call returns promptly, with an error, when
// its context is cancelled or its deadline passes, also when the server is
// stalled and the client does not honour context deadlines itself.
func TestContextEnds(t *testing.T) {
	const deadline = 50 * time.Millisecond
	const bound = time.Second // generous: this is about correctness, not timing
	srv, _, ks := realServer(t)
	clients := map[string]*redis.Client{
		"ContextTimeoutEnabled": srv.Client(),
		"no ContextTimeoutEnabled": srv.Client(func(o *redis.Options) {
			o.ContextTimeoutEnabled = false
			o.ReadTimeout = 10 * time.Second // so only rcall can bound the call
			o.WriteTimeout = 10 * time.Second
		}),
	}
	cases := []struct {
		name string
		opts []Option
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", []Option{WithTimeout(ratelimit.NoBound)}, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"ctx deadline", []Option{WithTimeout(ratelimit.NoBound)}, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), deadline)
		}, context.DeadlineExceeded},
		{"WithTimeout", []Option{WithTimeout(deadline)}, func() (context.Context, context.CancelFunc) {
			return t.Context(), func() {}
		}, context.DeadlineExceeded},
	}

	limiters := map[string]*Limiter{}
	for cname, rdb := range clients {
		for _, tc := range cases {
			name := cname + "/" + tc.name
			limiters[name] = newLimiter(t, rdb, ratelimit.PerSecond(100), append([]Option{WithKeyspace(ks)}, tc.opts...)...)
			// Load the script and open a connection while the server answers.
			if _, err := limiters[name].Allow(t.Context(), "warm"); err != nil {
				t.Fatalf("%s: warm-up: %v", name, err)
			}
		}
	}

	srv.Pause(1500 * time.Millisecond)
	for cname := range clients {
		for _, tc := range cases {
			name := cname + "/" + tc.name
			l := limiters[name]
			for _, op := range []string{"AllowN", "RefundN"} {
				ctx, cancel := tc.ctx()
				start := time.Now()
				var err error
				if op == "AllowN" {
					_, err = l.AllowN(ctx, "k", 1)
				} else {
					err = l.RefundN(ctx, "k", 1)
				}
				took := time.Since(start)
				cancel()
				// The caller's own context ending says nothing about
				// Redis: it is the context's error, never a store failure
				// (a layer above would apply its failure policy to that).
				// The limiter's own timeout is a store failure.
				callerEnded := tc.name != "WithTimeout"
				if !isErr(err, tc.want) || errors.Is(err, ratelimit.ErrStore) == callerEnded {
					t.Errorf("%s: %s: error %v, want %v, matching ErrStore only for the limiter's own timeout", name, op, err, tc.want)
				}
				if took > bound {
					t.Errorf("%s: %s returned after %v, want within %v", name, op, took, bound)
				}
			}
		}
	}
}

// isErr is errors.Is(err, target), except that for a deadline it also
// accepts the socket's own deadline error: a client with
// ContextTimeoutEnabled sets its socket deadline to the context's, and
// when the socket's fires first, rcall.Do's direct path may see ctx.Err()
// still nil and return the socket error (a race in internal/rcall).
func isErr(err, target error) bool {
	if target == context.DeadlineExceeded && errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	return errors.Is(err, target)
}

// TestLimiterKeys checks that a Limiter keeps its state at the key its
// Keyspace gives for the algorithm, so algorithms never share state.
func TestLimiterKeys(t *testing.T) {
	mr, rdb := miniServer(t, t0)
	ks, err := ratelimit.NewKeyspace("app:")
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range All {
		l := newLimiter(t, rdb, ratelimit.PerSecond(1), WithAlgorithm(alg), WithKeyspace(ks))
		if l.Algorithm() != alg || l.Limit() != ratelimit.PerSecond(1) {
			t.Fatalf("Limiter reports %v, %v", l.Algorithm(), l.Limit())
		}
		d, err := l.Allow(t.Context(), "user:1")
		if err != nil || !d.Allowed {
			t.Fatalf("%s: Allow: %+v, %v", alg.Name(), d, err)
		}
		want := fmt.Sprintf("app:{c:user:1}:%s", alg.Name())
		if !mr.Exists(want) {
			t.Fatalf("%s: no state at %s; keys: %v", alg.Name(), want, mr.Keys())
		}
	}
	if got := len(mr.Keys()); got != len(All) {
		t.Fatalf("%d keys, want one per algorithm: %v", got, mr.Keys())
	}
}
