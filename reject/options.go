package reject

import (
	"context"
	"net/http"
	"time"
)

// Defaults of the options.
const (
	// DefaultMaxWait bounds how long Wait and Queue hold a request.
	DefaultMaxWait = 5 * time.Second
	// DefaultQueueSize is how many requests of one key a Queue holds.
	DefaultQueueSize = 64
	// DefaultMaxQueued is how many requests a Queue holds across all keys.
	DefaultMaxQueued = 4096
)

// An Option configures a strategy. Each option says which strategies read
// it; the others ignore it.
type Option interface{ apply(*config) }

type config struct {
	status      int
	contentType string
	body        []byte
	maxWait     time.Duration
	queueSize   int
	maxQueued   int
	onLimit     func(context.Context, Request)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func newConfig(opts []Option) config {
	c := config{
		status:      http.StatusTooManyRequests,
		contentType: "text/plain; charset=utf-8",
		body:        []byte("rate limit exceeded\n"),
		maxWait:     DefaultMaxWait,
		queueSize:   DefaultQueueSize,
		maxQueued:   DefaultMaxQueued,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithStatus sets the HTTP status code of [Status]. Default: 429. A code
// outside 100..599 keeps the default.
func WithStatus(code int) Option {
	return optionFunc(func(c *config) {
		if code >= 100 && code <= 599 {
			c.status = code
		}
	})
}

// WithBody sets the response body of [Status] and its Content-Type.
// Default: "rate limit exceeded\n" as "text/plain; charset=utf-8". An empty
// contentType keeps the default type; a nil body sends none.
func WithBody(contentType string, body []byte) Option {
	return optionFunc(func(c *config) {
		if contentType != "" {
			c.contentType = contentType
		}
		c.body = body
	})
}

// WithMaxWait bounds how long [Wait] and [Queue] hold a request before
// refusing it. Default: DefaultMaxWait (5 s). Zero or negative means only
// the context bounds the wait.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxWait = d })
}

// WithQueueSize sets how many requests of one key a [Queue] holds; more
// are refused at once. Default: DefaultQueueSize (64). Values below 1
// mean 1.
func WithQueueSize(n int) Option {
	return optionFunc(func(c *config) { c.queueSize = max(n, 1) })
}

// WithMaxQueued sets how many requests a [Queue] holds across all keys;
// more are refused at once. Default: DefaultMaxQueued (4096). Values below
// 1 mean 1.
func WithMaxQueued(n int) Option {
	return optionFunc(func(c *config) { c.maxQueued = max(n, 1) })
}

// WithOnLimit sets a function that [Shadow] calls, on the request's
// goroutine, for every request it admits over the limit. Default: none.
func WithOnLimit(f func(ctx context.Context, r Request)) Option {
	return optionFunc(func(c *config) { c.onLimit = f })
}
