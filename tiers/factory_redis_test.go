package tiers_test

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

func TestRedisFactoryLeasesWhatAsksForIt(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	f := tiers.Redis(rdb, nil)
	ks, _ := ratelimit.NewKeyspace("x:")
	leased, err := f(tiers.Spec{Tier: "free", Limit: tiers.Client("second", ratelimit.PerSecond(5)).WithLease(true), Keyspace: ks})
	if err != nil {
		t.Fatal(err)
	}
	l, ok := leased.(*lease.Limiter)
	if !ok {
		t.Fatalf("leased limit got %T, want *lease.Limiter", leased)
	}
	defer l.Close(context.Background())
	direct, err := f(tiers.Spec{Tier: "free", Limit: tiers.Client("day", ratelimit.PerHour(100)), Keyspace: ks})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := direct.(*algorithms.Limiter); !ok {
		t.Fatalf("plain limit got %T, want *algorithms.Limiter", direct)
	}
	// The leased limiter keeps its keys in the Spec's keyspace.
	if d, err := l.Allow(context.Background(), "alice"); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	if keys := mr.Keys(); len(keys) != 1 || keys[0] != "x:{c:alice}:token_bucket" {
		t.Fatalf("Redis keys %v, want the lease's bucket in the Spec's keyspace", keys)
	}
}
