package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// impl names one of the limiters compared.
type impl int

const (
	implLease       impl = iota // lease.Limiter: local leases refilled from the token bucket
	implTokenBucket             // algorithms.Limiter with TokenBucket: one script per request
	implRedisRate               // github.com/go-redis/redis_rate/v10: one GCRA script per request
)

var impls = []impl{implLease, implTokenBucket, implRedisRate}

// String returns the name used in tables, charts and benchmark names.
func (i impl) String() string {
	switch i {
	case implLease:
		return "lease"
	case implTokenBucket:
		return "tokenbucket"
	case implRedisRate:
		return "redis_rate"
	}
	return fmt.Sprintf("impl(%d)", int(i))
}

// An outcome is what one check decided.
type outcome uint8

const (
	denied   outcome = iota
	admitted         // allowed
	fallback         // decided by the failure policy, without Redis (Source == SourceFallback)
)

// outcomeOf classifies a decision of the module's limiters.
func outcomeOf(d ratelimit.Decision) outcome {
	switch {
	case d.Source == ratelimit.SourceFallback:
		return fallback
	case d.Allowed:
		return admitted
	}
	return denied
}

// callTimeout bounds each Redis call of the module's limiters, instead of
// their 50 ms defaults: the benchmark overloads the server on purpose (up
// to 256 goroutines on two cores), and that queueing is to be measured as
// latency, not turned into failures and fallback decisions. redis_rate
// has no per-call timeout; its calls are bounded by the client's 3 s read
// timeout.
const callTimeout = time.Second

// A decider is one instance's limiter. allow must be safe for concurrent
// use.
type decider interface {
	// allow checks one request of key. A non-nil error means no decision.
	allow(ctx context.Context, key string) (outcome, error)
	// redisCalls is the number of Redis commands this instance has sent.
	redisCalls() int64
	// refillErrors is the number of lease refills that failed (0 for the
	// per-request limiters).
	refillErrors() int64
	// close releases the limiter and its client.
	close()
}

// countHook counts the commands a client sends (a pipeline counts each of
// its commands), so per-request limiters report their Redis calls from what
// actually went out rather than by assumption.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// newClient returns a client of addr that honours context deadlines, as
// the README recommends, with go-redis's other defaults (pool of 10 ×
// GOMAXPROCS connections), and counts its commands into n.
func newClient(addr string, n *atomic.Int64) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
	})
	c.AddHook(countHook{n})
	return c
}

// newDecider returns one instance of im: its own client of addr and its
// own limiter enforcing lim, with Redis keys under prefix. Instances made
// with the same prefix share their limits.
func newDecider(im impl, addr, prefix string, lim ratelimit.Limit) (decider, error) {
	var calls atomic.Int64
	rdb := newClient(addr, &calls)
	ks, err := ratelimit.NewKeyspace(prefix)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	switch im {
	case implLease:
		l, err := lease.New(rdb, lim, lease.WithKeyspace(ks), lease.WithRefillTimeout(callTimeout))
		if err != nil {
			_ = rdb.Close()
			return nil, err
		}
		return &leaseDecider{l: l, rdb: rdb}, nil
	case implTokenBucket:
		l, err := algorithms.NewLimiter(rdb, lim, algorithms.WithAlgorithm(algorithms.TokenBucket), algorithms.WithKeyspace(ks), algorithms.WithTimeout(callTimeout))
		if err != nil {
			_ = rdb.Close()
			return nil, err
		}
		return &tokenBucketDecider{l: l, rdb: rdb, calls: &calls}, nil
	case implRedisRate:
		return &redisRateDecider{
			l:     redis_rate.NewLimiter(rdb),
			lim:   redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period},
			rdb:   rdb,
			calls: &calls,
		}, nil
	}
	_ = rdb.Close()
	return nil, fmt.Errorf("unknown implementation %v", im)
}

type leaseDecider struct {
	l   *lease.Limiter
	rdb *redis.Client
}

func (d *leaseDecider) allow(ctx context.Context, key string) (outcome, error) {
	dec, err := d.l.Allow(ctx, key)
	return outcomeOf(dec), err
}

// redisCalls is the limiter's own count of script runs (refills,
// returns, checks beyond the key cap).
func (d *leaseDecider) redisCalls() int64 { return d.l.Stats().RedisCalls }

func (d *leaseDecider) refillErrors() int64 { return d.l.Stats().RefillErrors }

func (d *leaseDecider) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.l.Close(ctx)
	_ = d.rdb.Close()
}

type tokenBucketDecider struct {
	l     *algorithms.Limiter
	rdb   *redis.Client
	calls *atomic.Int64
}

func (d *tokenBucketDecider) allow(ctx context.Context, key string) (outcome, error) {
	dec, err := d.l.Allow(ctx, key)
	return outcomeOf(dec), err
}

func (d *tokenBucketDecider) redisCalls() int64   { return d.calls.Load() }
func (d *tokenBucketDecider) refillErrors() int64 { return 0 }
func (d *tokenBucketDecider) close()              { _ = d.rdb.Close() }

// redisRateDecider has no keyspace: redis_rate prepends "rate:" to the
// key, and the keys given to allow carry the row's prefix (see rowKeys).
type redisRateDecider struct {
	l     *redis_rate.Limiter
	lim   redis_rate.Limit
	rdb   *redis.Client
	calls *atomic.Int64
}

func (d *redisRateDecider) allow(ctx context.Context, key string) (outcome, error) {
	res, err := d.l.Allow(ctx, key, d.lim)
	if err != nil {
		return denied, err
	}
	if res.Allowed > 0 {
		return admitted, nil
	}
	return denied, nil
}

func (d *redisRateDecider) redisCalls() int64   { return d.calls.Load() }
func (d *redisRateDecider) refillErrors() int64 { return 0 }
func (d *redisRateDecider) close()              { _ = d.rdb.Close() }

// rowKeys returns the client keys of a row with n keys: n = 1 is the hot
// key. redis_rate has no keyspace option, so its keys carry the row's
// prefix themselves; the others get it from their Keyspace. Built once per
// row so that the measured loop does no string work of its own.
func rowKeys(im impl, prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
		if im == implRedisRate {
			keys[i] = prefix + keys[i]
		}
	}
	return keys
}
