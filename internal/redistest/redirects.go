package redistest

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Redirects counts the MOVED and ASK replies that the node clients of a
// ClusterClient receive (the ClusterClient follows them). Install it with
// ClusterOptions.NewClient = r.NewClient. The zero value is ready to use;
// it is safe for concurrent use.
type Redirects struct{ moved, asked atomic.Int64 }

// NewClient is a ClusterOptions.NewClient that counts redirects.
func (r *Redirects) NewClient(opt *redis.Options) *redis.Client {
	c := redis.NewClient(opt)
	c.AddHook(r)
	return c
}

// Moved returns the MOVED replies counted so far.
func (r *Redirects) Moved() int64 { return r.moved.Load() }

// Asked returns the ASK replies counted so far.
func (r *Redirects) Asked() int64 { return r.asked.Load() }

// DialHook implements redis.Hook.
func (r *Redirects) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (r *Redirects) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil {
			switch msg := err.Error(); {
			case strings.HasPrefix(msg, "MOVED "):
				r.moved.Add(1)
			case strings.HasPrefix(msg, "ASK "):
				r.asked.Add(1)
			}
		}
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (r *Redirects) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
