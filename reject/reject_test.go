package reject_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/reject"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pool is a limiter over one shared pool of tokens that the test fills.
// Denials report RetryAfter retry. It records admissions by request id.
type pool struct {
	mu       sync.Mutex
	tokens   int
	retry    time.Duration
	calls    int
	admitted []int
	refunded int
}

func (p *pool) add(n int) {
	p.mu.Lock()
	p.tokens += n
	p.mu.Unlock()
}

func (p *pool) stats() (calls int, admitted []int, refunded int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]int(nil), p.admitted...), p.refunded
}

// tagged is the view of a pool that one request gets.
type tagged struct {
	p  *pool
	id int
	// onAllow, if set, runs before the pool decides.
	onAllow func()
}

func (t tagged) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return t.AllowN(ctx, key, 1)
}

func (t tagged) AllowN(_ context.Context, _ string, n int) (ratelimit.Decision, error) {
	if t.onAllow != nil {
		t.onAllow()
	}
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.tokens >= n {
		p.tokens -= n
		p.admitted = append(p.admitted, t.id)
		return ratelimit.Decision{Allowed: true, Remaining: p.tokens}, nil
	}
	return ratelimit.Decision{Remaining: p.tokens, RetryAfter: p.retry}, nil
}

func (t tagged) RefundN(_ context.Context, _ string, n int) error {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	t.p.tokens += n
	t.p.refunded += n
	return nil
}

// denied returns a Request that the pool has just denied.
func denied(p *pool, key string, id int) reject.Request {
	return reject.Request{Limiter: tagged{p: p, id: id}, Key: key, N: 1,
		Decision: ratelimit.Decision{RetryAfter: p.retry}}
}

func TestReject(t *testing.T) {
	d := ratelimit.Decision{RetryAfter: 3 * time.Second, Limit: ratelimit.PerSecond(5)}
	got, err := reject.Reject().Handle(context.Background(), reject.Request{Key: "k", N: 1, Decision: d})
	if !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
		t.Fatalf("error %v does not match ErrRateLimitExceeded", err)
	}
	var ex *ratelimit.ExceededError
	if !errors.As(err, &ex) || ex.Key != "k" || ex.Decision.RetryAfter != 3*time.Second || got != d {
		t.Errorf("refusal %+v, decision %+v; want key k, retry 3s and the denial", ex, got)
	}
}

func TestStatus(t *testing.T) {
	d := ratelimit.Decision{RetryAfter: time.Second}
	for _, tt := range []struct {
		s     reject.Strategy
		code  int
		ctype string
		body  string
	}{
		{reject.Status(0, "", nil), http.StatusTooManyRequests, "text/plain; charset=utf-8", "rate limit exceeded\n"},
		{reject.Status(503, "application/json", []byte(`{"error":"slow down"}`)), 503, "application/json", `{"error":"slow down"}`},
		{reject.Status(http.StatusTooManyRequests, "", []byte{}), http.StatusTooManyRequests, "text/plain; charset=utf-8", ""},
	} {
		_, err := tt.s.Handle(context.Background(), reject.Request{Key: "k", N: 1, Decision: d})
		var se *reject.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("error %v is not a *StatusError", err)
		}
		if se.Code != tt.code || se.ContentType != tt.ctype || string(se.Body) != tt.body {
			t.Errorf("StatusError = %d %q %q, want %d %q %q", se.Code, se.ContentType, se.Body, tt.code, tt.ctype, tt.body)
		}
		var ex *ratelimit.ExceededError
		if !errors.Is(err, ratelimit.ErrRateLimitExceeded) || !errors.As(err, &ex) || ex.Decision != d {
			t.Errorf("StatusError should wrap the ExceededError with the decision: %v", err)
		}
	}
}

// TestStatusRefusesCodesThatDoNotRefuse: Status panics, when it is made,
// for a code that is not a client or server error: net/http panics on a
// code outside 100-999 at the first refusal (in the middle of a request),
// and a 1xx, 2xx or 3xx would tell a refused client it was served or sent
// on.
func TestStatusRefusesCodesThatDoNotRefuse(t *testing.T) {
	for _, code := range []int{-1, 42, 99, 100, 200, 204, 302, 399, 600, 1000} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Status(%d) did not panic", code)
				}
			}()
			reject.Status(code, "", nil)
		}()
	}
	for _, code := range []int{0, 400, 429, 503, 599} {
		reject.Status(code, "", nil) // does not panic
	}
}

func TestWaitAdmitsWhenTokensArrive(t *testing.T) {
	p := &pool{retry: 10 * time.Millisecond}
	time.AfterFunc(30*time.Millisecond, func() { p.add(1) })
	d, err := reject.Wait(reject.WithMaxWait(5*time.Second)).Handle(context.Background(), denied(p, "k", 1))
	if err != nil || !d.Allowed {
		t.Fatalf("Wait = %+v, %v; want admitted", d, err)
	}
	if calls, admitted, _ := p.stats(); calls < 2 || len(admitted) != 1 {
		t.Errorf("pool asked %d times, admitted %v; want at least 2 checks and one admission", calls, admitted)
	}
}

func TestWaitRefusesWithoutSleepingInVain(t *testing.T) {
	p := &pool{retry: 10 * time.Second}
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		opts []reject.Option
	}{
		{"max wait shorter than retry", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			[]reject.Option{reject.WithMaxWait(100 * time.Millisecond)}},
		{"deadline sooner than retry", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, []reject.Option{reject.WithMaxWait(ratelimit.NoBound)}},
	}
	for _, tt := range tests {
		ctx, cancel := tt.ctx()
		start := time.Now()
		_, err := reject.Wait(tt.opts...).Handle(ctx, denied(p, "k", 1))
		cancel()
		if !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
			t.Errorf("%s: error %v, want ErrRateLimitExceeded", tt.name, err)
		}
		if el := time.Since(start); el > 900*time.Millisecond {
			t.Errorf("%s: took %v; should refuse at once", tt.name, el)
		}
	}
	if calls, _, _ := p.stats(); calls != 0 {
		t.Errorf("pool asked %d times; a wait bound to fail should not retry", calls)
	}
}

func TestWaitHonoursMaxWaitAndCancel(t *testing.T) {
	p := &pool{retry: 20 * time.Millisecond}
	// Max wait: gives up after retrying for about 100ms.
	start := time.Now()
	_, err := reject.Wait(reject.WithMaxWait(100*time.Millisecond)).Handle(context.Background(), denied(p, "k", 1))
	if !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
		t.Errorf("after max wait: %v, want ErrRateLimitExceeded", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("max wait 100ms took %v", el)
	}
	// Cancel while sleeping.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = reject.Wait(reject.WithMaxWait(ratelimit.NoBound)).Handle(ctx, denied(p, "k", 1))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v, want context.Canceled", err)
	}
}

// TestWaitGivesBackOnCancel: the caller's context ends while the limiter
// is admitting its request; the tokens go back.
func TestWaitGivesBackOnCancel(t *testing.T) {
	p := &pool{retry: time.Millisecond, tokens: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := reject.Request{Limiter: tagged{p: p, id: 1, onAllow: cancel}, Key: "k", N: 1,
		Decision: ratelimit.Decision{RetryAfter: time.Millisecond}}
	d, err := reject.Wait().Handle(ctx, r)
	if !errors.Is(err, context.Canceled) || d.Allowed {
		t.Errorf("Wait = %+v, %v; want not allowed, context.Canceled", d, err)
	}
	if _, admitted, refunded := p.stats(); len(admitted) != 1 || refunded != 1 {
		t.Errorf("admitted %v, refunded %d; want the one admission given back", admitted, refunded)
	}
}

func TestShadow(t *testing.T) {
	var seen []string
	s := reject.NewShadow(func(_ context.Context, r reject.Request) { seen = append(seen, r.Key) })
	d := ratelimit.Decision{RetryAfter: time.Second}
	for _, k := range []string{"a", "b"} {
		got, err := s.Handle(context.Background(), reject.Request{Key: k, N: 1, Decision: d})
		if err != nil || got != d {
			t.Errorf("Shadow.Handle = %+v, %v; want the denial and no error (admitted)", got, err)
		}
	}
	if s.Count() != 2 || len(seen) != 2 || seen[1] != "b" {
		t.Errorf("Count %d, callback saw %v; want 2 and [a b]", s.Count(), seen)
	}
	var zero reject.Shadow
	if _, err := zero.Handle(context.Background(), reject.Request{Key: "z"}); err != nil || zero.Count() != 1 {
		t.Errorf("zero Shadow: %v, count %d; want admitted and counted", err, zero.Count())
	}
}

func TestCustom(t *testing.T) {
	s := reject.Custom(func(_ context.Context, r reject.Request) (ratelimit.Decision, error) {
		if r.Key == "vip" {
			return r.Decision, nil
		}
		return r.Decision, &ratelimit.ExceededError{Key: r.Key, Decision: r.Decision}
	})
	if _, err := s.Handle(context.Background(), reject.Request{Key: "vip"}); err != nil {
		t.Errorf("vip refused: %v", err)
	}
	if _, err := s.Handle(context.Background(), reject.Request{Key: "joe"}); !errors.Is(err, ratelimit.ErrRateLimitExceeded) {
		t.Errorf("joe: %v, want ErrRateLimitExceeded", err)
	}
}
