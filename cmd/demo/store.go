package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// store is the Redis the instances share: an embedded miniredis, or the
// server or Cluster named by -redis.
type store struct {
	addrs       []string
	mr          *miniredis.Miniredis // nil for a real server
	allowRemote bool
}

// openStore starts miniredis when addrs is empty. Unless allowRemote,
// its clients dial loopback addresses only, including the nodes a Cluster
// announces.
func openStore(addrs []string, allowRemote bool) (*store, error) {
	if len(addrs) > 0 {
		return &store{addrs: addrs, allowRemote: allowRemote}, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return &store{addrs: []string{mr.Addr()}, mr: mr}, nil
}

func (s *store) embedded() bool { return s.mr != nil }

// String describes the store for the header.
func (s *store) String() string {
	switch {
	case s.embedded():
		return "embedded miniredis on " + s.addrs[0]
	case len(s.addrs) > 1:
		return "Redis Cluster at " + strings.Join(s.addrs, ",")
	}
	return "Redis at " + s.addrs[0]
}

func (s *store) Close() {
	if s.mr != nil {
		s.mr.Close()
	}
}

// client returns a new client, one per simulated instance, with hooks
// added: a Cluster client for several addresses. It pings the server
// first so a wrong address fails with a clear error.
func (s *store) client(ctx context.Context, hooks ...redis.Hook) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if len(s.addrs) > 1 {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: s.addrs, ContextTimeoutEnabled: true, Dialer: s.dial})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: s.addrs[0], ContextTimeoutEnabled: true, Dialer: s.dial})
	}
	for _, h := range hooks {
		if h != nil {
			rdb.AddHook(h)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("%v: %w", s, err)
	}
	return rdb, nil
}

// dial connects to addr, refusing addresses off this machine unless
// remote ones are allowed.
func (s *store) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := checkAddr("redis", addr, s.allowRemote); err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// quietLogger drops go-redis's internal log lines (such as repeated dial
// failures); the demo reports errors itself.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// callCounter is a go-redis hook that counts script calls (EVAL, EVALSHA
// and their read-only forms), the only commands the limiters send while
// deciding, refilling, refunding or giving back. It attributes each call to
// a tier by its first key, which starts with prefix followed by the tier
// name (see tiers.LimitKeyspace). One counter serves every client of a
// mode, so the count is honest for both modes.
type callCounter struct {
	prefix string
	tiers  map[string]int // tier name → index in byTier; read-only
	total  atomic.Int64
	byTier []atomic.Int64 // the last one counts calls of no known tier
}

var _ redis.Hook = (*callCounter)(nil)

func newCallCounter(prefix string, tierNames []string) *callCounter {
	c := &callCounter{prefix: prefix, tiers: make(map[string]int, len(tierNames)),
		byTier: make([]atomic.Int64, len(tierNames)+1)}
	for i, t := range tierNames {
		c.tiers[t] = i
	}
	return c
}

// tierCalls returns the calls attributed to tier i.
func (c *callCounter) tierCalls(i int) int64 { return c.byTier[i].Load() }

func (c *callCounter) count(cmd redis.Cmder) {
	switch cmd.Name() {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
	default:
		return
	}
	c.total.Add(1)
	i := len(c.byTier) - 1
	// EVALSHA sha numkeys key...
	if args := cmd.Args(); len(args) > 3 {
		if k, ok := args[3].(string); ok {
			if rest, ok := strings.CutPrefix(k, c.prefix); ok {
				tier, _, _ := strings.Cut(rest, ":")
				if j, ok := c.tiers[tier]; ok {
					i = j
				}
			}
		}
	}
	c.byTier[i].Add(1)
}

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}
