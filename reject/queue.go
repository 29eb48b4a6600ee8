package reject

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Errors of a [Queue]. The refusals that carry them also match
// [ratelimit.ErrRateLimitExceeded] and carry the decision in an
// [*ratelimit.ExceededError].
var (
	// ErrQueueFull is matched when a Queue refuses a request because it
	// already holds WithQueueLimits' perKey requests of the key or its total in
	// all.
	ErrQueueFull = errors.New("reject: queue full")
	// ErrQueueClosed is matched when a Queue refuses a request because it
	// is closed, or was closing and gave up waiting for it.
	ErrQueueClosed = errors.New("reject: queue closed")
)

// Queue is the Strategy that holds denied requests and admits them later,
// when tokens are available, in arrival order per key. Only the oldest
// request of a key checks the limiter; the others wait for their turn.
// (A request that was never denied does not pass through the queue, so it
// can be admitted ahead of queued ones when it finds a token free.)
//
// A Queue refuses a request with [ErrQueueFull] when it is full
// ([WithQueueLimits]), and with an
// [*ratelimit.ExceededError] when the request has waited [WithMaxWait] or
// would have to. A request whose ctx ends leaves the queue with ctx's
// error; tokens admitted for it as it left are given back.
//
// Queued requests wait on their callers' goroutines: a Queue starts none.
// [Queue.Close] stops accepting requests and drains or cancels the queued
// ones.
//
// A Queue is safe for concurrent use. Create it with [NewQueue]; the zero
// value is not usable.
type Queue struct {
	maxWait   time.Duration
	queueSize int
	maxQueued int

	mu      sync.Mutex           // protects keys, n, closed, drained
	keys    map[string][]*waiter // per key, in arrival order; made lazily
	n       int                  // requests queued, over all keys
	closed  bool
	drained chan struct{} // made by Close; closed when n reaches 0

	stop     chan struct{} // closed when Close gives up waiting
	stopOnce sync.Once
}

type waiter struct {
	turn chan struct{} // closed when the waiter is the oldest of its key
}

// NewQueue returns a Queue configured by [WithMaxWait] and
// [WithQueueLimits].
func NewQueue(opts ...QueueOption) *Queue {
	c := newConfig(opts, QueueOption.applyQueue)
	return &Queue{
		maxWait:   c.maxWait,
		queueSize: c.queueSize,
		maxQueued: c.maxQueued,
		stop:      make(chan struct{}),
	}
}

// Handle queues r behind the key's earlier requests and returns when it is
// admitted or refused, as the type documentation describes.
func (q *Queue) Handle(ctx context.Context, r Request) (ratelimit.Decision, error) {
	var deadline time.Time
	if q.maxWait > 0 {
		deadline = time.Now().Add(q.maxWait)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return r.Decision, fmt.Errorf("%w: %w", ErrQueueClosed, exceeded(r.Key, r.Decision))
	}
	ws := q.keys[r.Key]
	if len(ws) >= q.queueSize || q.n >= q.maxQueued {
		q.mu.Unlock()
		return r.Decision, fmt.Errorf("%w: %w", ErrQueueFull, exceeded(r.Key, r.Decision))
	}
	w := &waiter{turn: make(chan struct{})}
	first := len(ws) == 0
	if first {
		close(w.turn)
	}
	if q.keys == nil {
		q.keys = make(map[string][]*waiter)
	}
	q.keys[r.Key] = append(ws, w)
	q.n++
	q.mu.Unlock()
	defer q.leave(r.Key, w)

	if !first {
		var timeout <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-w.turn:
		case <-ctx.Done():
			return r.Decision, ctx.Err()
		case <-q.stop:
			return r.Decision, fmt.Errorf("%w: %w", ErrQueueClosed, exceeded(r.Key, r.Decision))
		case <-timeout:
			return r.Decision, exceeded(r.Key, r.Decision)
		}
	}
	// The oldest request of the key: the first one sleeps out its own
	// denial; one that has waited its turn checks at once.
	d, err := retry(ctx, r, deadline, q.stop, !first)
	if errors.Is(err, errStopped) {
		err = fmt.Errorf("%w: %w", ErrQueueClosed, exceeded(r.Key, d))
	}
	return d, err
}

// leave removes w from key's queue and, if it was the oldest, hands the
// turn to the next.
func (q *Queue) leave(key string, w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ws := q.keys[key]
	i := slices.Index(ws, w)
	if i < 0 {
		return
	}
	ws = slices.Delete(ws, i, i+1)
	switch {
	case len(ws) == 0:
		delete(q.keys, key)
	case i == 0:
		close(ws[0].turn)
		q.keys[key] = ws
	default:
		q.keys[key] = ws
	}
	q.n--
	if q.n == 0 && q.drained != nil {
		close(q.drained)
		q.drained = nil
	}
}

// Len returns the number of requests queued, over all keys.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Close stops the Queue: it refuses new requests with [ErrQueueClosed] at
// once, and waits for the queued ones to be admitted or to give up. If
// ctx ends first, it refuses every request still queued with
// [ErrQueueClosed], waits for them to leave (each within its limiter's own
// timeout) and returns ctx's error. Close is safe to call more than once.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	if q.n == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.drained == nil {
		q.drained = make(chan struct{})
	}
	drained := q.drained
	q.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		q.stopOnce.Do(func() { close(q.stop) })
		<-drained
		return ctx.Err()
	}
}
