package reject_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/reject"
)

type outcome struct {
	id  int
	d   ratelimit.Decision
	err error
}

// enqueue starts request id of key on q and waits until the queue holds
// want requests, so arrival order is the order of the calls.
func enqueue(t *testing.T, ctx context.Context, q *reject.Queue, p *pool, key string, id, want int, out chan<- outcome) {
	t.Helper()
	go func() {
		d, err := q.Handle(ctx, denied(p, key, id))
		out <- outcome{id, d, err}
	}()
	for i := 0; q.Len() < want; i++ {
		if i > 5000 {
			t.Fatalf("request %d not queued after 5s", id)
		}
		time.Sleep(time.Millisecond)
	}
}

func collect(t *testing.T, out <-chan outcome, n int) []outcome {
	t.Helper()
	var got []outcome
	for range n {
		select {
		case o := <-out:
			got = append(got, o)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d requests returned within 10s", len(got), n)
		}
	}
	return got
}

func TestQueueArrivalOrder(t *testing.T) {
	p := &pool{retry: 5 * time.Millisecond}
	q := reject.NewQueue(reject.WithMaxWait(10 * time.Second))
	out := make(chan outcome, 5)
	ctx := context.Background()
	for id := range 5 {
		enqueue(t, ctx, q, p, "k", id, id+1, out)
	}
	p.add(5) // enough for everyone at once: only the order can differ
	for _, o := range collect(t, out, 5) {
		if o.err != nil || !o.d.Allowed {
			t.Errorf("request %d: %+v, %v; want admitted", o.id, o.d, o.err)
		}
	}
	if _, admitted, _ := p.stats(); !reflect.DeepEqual(admitted, []int{0, 1, 2, 3, 4}) {
		t.Errorf("admitted in order %v, want arrival order [0 1 2 3 4]", admitted)
	}
	if q.Len() != 0 {
		t.Errorf("Len = %d after all left, want 0", q.Len())
	}
	if err := q.Close(ctx); err != nil {
		t.Errorf("Close of an empty queue: %v", err)
	}
}

func TestQueueBounds(t *testing.T) {
	p := &pool{retry: 5 * time.Millisecond}
	q := reject.NewQueue(reject.WithQueueLimits(2, 3), reject.WithMaxWait(10*time.Second))
	out := make(chan outcome, 3)
	ctx := context.Background()
	enqueue(t, ctx, q, p, "a", 0, 1, out)
	enqueue(t, ctx, q, p, "a", 1, 2, out)
	// Key a is full.
	_, err := q.Handle(ctx, denied(p, "a", 2))
	var ex *ratelimit.ExceededError
	if !errors.Is(err, reject.ErrQueueFull) || !errors.Is(err, ratelimit.ErrRateLimitExceeded) || !errors.As(err, &ex) {
		t.Errorf("third request of a full key: %v, want ErrQueueFull carrying an ExceededError", err)
	}
	// Another key still fits, until the queue as a whole is full.
	enqueue(t, ctx, q, p, "b", 3, 3, out)
	if _, err := q.Handle(ctx, denied(p, "c", 4)); !errors.Is(err, reject.ErrQueueFull) {
		t.Errorf("request beyond the total of WithQueueLimits: %v, want ErrQueueFull", err)
	}
	p.add(3)
	for _, o := range collect(t, out, 3) {
		if o.err != nil {
			t.Errorf("queued request %d: %v", o.id, o.err)
		}
	}
	if err := q.Close(ctx); err != nil {
		t.Error(err)
	}
}

func TestQueueMaxWait(t *testing.T) {
	p := &pool{retry: 10 * time.Millisecond}
	q := reject.NewQueue(reject.WithMaxWait(80 * time.Millisecond))
	out := make(chan outcome, 2)
	ctx := context.Background()
	start := time.Now()
	enqueue(t, ctx, q, p, "k", 0, 1, out)
	enqueue(t, ctx, q, p, "k", 1, 2, out)
	for _, o := range collect(t, out, 2) {
		if !errors.Is(o.err, ratelimit.ErrRateLimitExceeded) || errors.Is(o.err, reject.ErrQueueFull) {
			t.Errorf("request %d: %v, want a refusal for waiting too long", o.id, o.err)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("max wait of 80ms took %v", el)
	}
	if q.Len() != 0 {
		t.Errorf("Len = %d, want 0", q.Len())
	}
}

func TestQueueCancelledRequestLeaves(t *testing.T) {
	p := &pool{retry: 5 * time.Millisecond}
	q := reject.NewQueue(reject.WithMaxWait(10 * time.Second))
	out := make(chan outcome, 3)
	bg := context.Background()
	ctx, cancel := context.WithCancel(bg)
	enqueue(t, bg, q, p, "k", 0, 1, out)
	enqueue(t, ctx, q, p, "k", 1, 2, out) // will leave
	enqueue(t, bg, q, p, "k", 2, 3, out)
	cancel()
	got := collect(t, out, 1)
	if got[0].id != 1 || !errors.Is(got[0].err, context.Canceled) {
		t.Errorf("first to return: request %d with %v; want 1 with context.Canceled", got[0].id, got[0].err)
	}
	p.add(2)
	collect(t, out, 2)
	if _, admitted, _ := p.stats(); !reflect.DeepEqual(admitted, []int{0, 2}) {
		t.Errorf("admitted %v, want [0 2]", admitted)
	}
	if err := q.Close(bg); err != nil {
		t.Error(err)
	}
}

func TestQueueCloseDrains(t *testing.T) {
	p := &pool{retry: 5 * time.Millisecond}
	q := reject.NewQueue(reject.WithMaxWait(10 * time.Second))
	out := make(chan outcome, 3)
	bg := context.Background()
	for id := range 3 {
		enqueue(t, bg, q, p, "k", id, id+1, out)
	}
	closed := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		closed <- q.Close(ctx)
	}()
	// Closing refuses newcomers at once. (Until Close has begun, the probe
	// is queued; its context is already cancelled, so it leaves at once.)
	probe, cancelProbe := context.WithCancel(bg)
	cancelProbe()
	for i := 0; ; i++ {
		_, err := q.Handle(probe, denied(p, "other", 9))
		if errors.Is(err, reject.ErrQueueClosed) {
			break
		}
		if i > 5000 {
			t.Fatalf("newcomer during Close: %v, want ErrQueueClosed", err)
		}
		time.Sleep(time.Millisecond)
	}
	// ...and lets the queued requests through as tokens arrive.
	p.add(3)
	for _, o := range collect(t, out, 3) {
		if o.err != nil || !o.d.Allowed {
			t.Errorf("queued request %d during Close: %+v, %v; want admitted", o.id, o.d, o.err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v, want nil after draining", err)
	}
}

func TestQueueCloseCancels(t *testing.T) {
	p := &pool{retry: 5 * time.Millisecond}
	q := reject.NewQueue(reject.WithMaxWait(ratelimit.NoBound)) // only Close can end the wait
	out := make(chan outcome, 3)
	bg := context.Background()
	enqueue(t, bg, q, p, "a", 0, 1, out)
	enqueue(t, bg, q, p, "a", 1, 2, out)
	enqueue(t, bg, q, p, "b", 2, 3, out)
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want context.DeadlineExceeded", err)
	}
	// Close has returned: every queued request has already left.
	if q.Len() != 0 {
		t.Errorf("Len = %d after Close, want 0", q.Len())
	}
	for _, o := range collect(t, out, 3) {
		if !errors.Is(o.err, reject.ErrQueueClosed) || !errors.Is(o.err, ratelimit.ErrRateLimitExceeded) {
			t.Errorf("request %d: %v, want ErrQueueClosed carrying an ExceededError", o.id, o.err)
		}
	}
	if err := q.Close(bg); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
