package reject_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/reject"
)

// bucket is a stand-in limiter for the examples: one pool of tokens,
// which the example fills by hand, so that the output does not depend on
// the clock. Every denial reports RetryAfter retry.
type bucket struct {
	mu     sync.Mutex
	tokens int
	retry  time.Duration
	checks int
}

func (b *bucket) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return b.AllowN(ctx, key, 1)
}

func (b *bucket) AllowN(_ context.Context, _ string, n int) (ratelimit.Decision, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checks++
	if b.tokens < n {
		return ratelimit.Decision{Remaining: b.tokens, RetryAfter: b.retry}, nil
	}
	b.tokens -= n
	return ratelimit.Decision{Allowed: true, Remaining: b.tokens}, nil
}

// add puts n tokens in the bucket.
func (b *bucket) add(n int) {
	b.mu.Lock()
	b.tokens += n
	b.mu.Unlock()
}

// dueAfter is a stand-in limiter whose next token is due after a number
// of checks rather than of seconds: it denies the first denials checks,
// each with RetryAfter retry, and admits every check after them.
type dueAfter struct {
	mu      sync.Mutex
	denials int
	retry   time.Duration
	checks  int
}

func (l *dueAfter) Allow(ctx context.Context, key string) (ratelimit.Decision, error) {
	return l.AllowN(ctx, key, 1)
}

func (l *dueAfter) AllowN(context.Context, string, int) (ratelimit.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks++
	if l.checks <= l.denials {
		return ratelimit.Decision{RetryAfter: l.retry}, nil
	}
	return ratelimit.Decision{Allowed: true}, nil
}

// A limiter of 3 requests a minute denies the fourth; Reject refuses it
// with an error that carries the denial and its RetryAfter.
func ExampleReject() {
	// An embedded Redis with a stopped clock stands in for a real server.
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	mr.SetTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	l, err := algorithms.NewLimiter(rdb, ratelimit.PerMinute(3))
	if err != nil {
		panic(err)
	}
	strategy := reject.Reject()

	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		d, err := l.Allow(ctx, "user:42")
		if err != nil {
			panic(err)
		}
		if !d.Allowed {
			d, err = strategy.Handle(ctx, reject.Request{Limiter: l, Key: "user:42", N: 1, Decision: d})
		}
		var ex *ratelimit.ExceededError
		switch {
		case errors.As(err, &ex):
			fmt.Println(i, "refused:", errors.Is(err, ratelimit.ErrRateLimitExceeded),
				"retry after", ex.Decision.RetryAfter.Round(time.Second))
		case err != nil:
			panic(err)
		default:
			fmt.Println(i, "allowed,", d.Remaining, "left")
		}
	}
	// Output:
	// 1 allowed, 2 left
	// 2 allowed, 1 left
	// 3 allowed, 0 left
	// 4 refused: true retry after 20s
}

// Enforce checks a request and hands a denial to a strategy: with
// Reject, the fourth request of three tokens is refused with an error
// that carries the decision.
func ExampleEnforce() {
	l := &bucket{tokens: 3, retry: 20 * time.Second}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		d, err := reject.Enforce(ctx, l, "user:42", 1, reject.Reject())
		var ex *ratelimit.ExceededError
		switch {
		case errors.As(err, &ex):
			fmt.Printf("request %d: denied, retry after %v\n", i, ex.Decision.RetryAfter)
		case err != nil:
			fmt.Printf("request %d: check failed: %v\n", i, err)
		default:
			fmt.Printf("request %d: allowed, %d left\n", i, d.Remaining)
		}
	}
	// Output:
	// request 1: allowed, 2 left
	// request 2: allowed, 1 left
	// request 3: allowed, 0 left
	// request 4: denied, retry after 20s
}

// Status refuses with what an HTTP layer should answer.
func ExampleStatus() {
	denial := ratelimit.Decision{Limit: ratelimit.PerSecond(5), RetryAfter: 200 * time.Millisecond}
	strategy := reject.Status(http.StatusTooManyRequests, "application/json", []byte(`{"error":"slow down"}`))

	_, err := strategy.Handle(context.Background(), reject.Request{Key: "user:42", N: 1, Decision: denial})
	var se *reject.StatusError
	if errors.As(err, &se) {
		fmt.Println(se.Code, se.ContentType, string(se.Body))
		fmt.Println("retry after", se.Exceeded.Decision.RetryAfter)
	}
	fmt.Println(errors.Is(err, ratelimit.ErrRateLimitExceeded))
	// Output:
	// 429 application/json {"error":"slow down"}
	// retry after 200ms
	// true
}

// Wait holds a denied request and checks again after each RetryAfter,
// until the limiter admits it or the next check would come too late.
func ExampleWait() {
	// The limiter denies two more checks, 10 ms apart, before a token is due.
	l := &dueAfter{denials: 3, retry: 10 * time.Millisecond}
	strategy := reject.Wait(reject.WithMaxWait(time.Second))

	ctx := context.Background()
	d, err := l.Allow(ctx, "user:42")
	if err != nil {
		panic(err)
	}
	fmt.Println("allowed:", d.Allowed)
	d, err = strategy.Handle(ctx, reject.Request{Limiter: l, Key: "user:42", N: 1, Decision: d})
	fmt.Println("after waiting, allowed:", d.Allowed, err, "checks:", l.checks)

	// A request whose token is due later than the maximum wait is refused
	// at once, without sleeping in vain.
	slow := &dueAfter{denials: 1, retry: time.Minute}
	d, _ = slow.Allow(ctx, "user:42")
	_, err = strategy.Handle(ctx, reject.Request{Limiter: slow, Key: "user:42", N: 1, Decision: d})
	fmt.Println("refused:", errors.Is(err, ratelimit.ErrRateLimitExceeded), "checks:", slow.checks)
	// Output:
	// allowed: false
	// after waiting, allowed: true <nil> checks: 4
	// refused: true checks: 1
}

// Shadow admits the requests over the limit and counts them, to try a
// limit out on real traffic before enforcing it.
func ExampleNewShadow() {
	l := &bucket{tokens: 2, retry: time.Second} // room for two requests
	shadow := reject.NewShadow(func(_ context.Context, r reject.Request) {
		fmt.Println("would have limited", r.Key)
	})

	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		d, err := l.Allow(ctx, "user:42")
		if err != nil {
			panic(err)
		}
		if !d.Allowed {
			if _, err := shadow.Handle(ctx, reject.Request{Limiter: l, Key: "user:42", N: 1, Decision: d}); err != nil {
				panic(err) // Shadow admits every request
			}
		}
		fmt.Println(i, "served")
	}
	fmt.Println("over the limit:", shadow.Count())
	// Output:
	// 1 served
	// 2 served
	// would have limited user:42
	// 3 served
	// would have limited user:42
	// 4 served
	// over the limit: 2
}

// A Queue admits the denied requests of a key in arrival order as tokens
// become available, and refuses them at once when it is full.
func ExampleQueue() {
	l := &bucket{retry: 5 * time.Millisecond} // empty: every request is denied
	q := reject.NewQueue(reject.WithQueueLimits(3, 0), reject.WithMaxWait(5*time.Second))
	defer q.Close(context.Background())

	ctx := context.Background()
	handle := func() (ratelimit.Decision, error) {
		d, err := l.Allow(ctx, "user:42")
		if err != nil || d.Allowed {
			return d, err
		}
		return q.Handle(ctx, reject.Request{Limiter: l, Key: "user:42", N: 1, Decision: d})
	}

	// Three requests, one after another, fill the key's queue.
	var wg sync.WaitGroup
	results := make([]string, 3)
	for i := range results {
		wg.Go(func() {
			d, err := handle()
			results[i] = fmt.Sprintf("request %d: allowed %v, %d left, err %v", i+1, d.Allowed, d.Remaining, err)
		})
		for q.Len() < i+1 { // wait until it is queued, to fix the order
			time.Sleep(time.Millisecond)
		}
	}

	// A fourth is refused at once.
	_, err := handle()
	fmt.Println("request 4:", errors.Is(err, reject.ErrQueueFull), errors.Is(err, ratelimit.ErrRateLimitExceeded))

	l.add(3) // three tokens become available: the queue admits in order
	wg.Wait()
	for _, r := range results {
		fmt.Println(r)
	}
	fmt.Println("queued:", q.Len())
	// Output:
	// request 4: true true
	// request 1: allowed true, 2 left, err <nil>
	// request 2: allowed true, 1 left, err <nil>
	// request 3: allowed true, 0 left, err <nil>
	// queued: 0
}
