package algorithms

import (
	"fmt"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/internal/redistest"
)

// TestClusterQuota runs the quota operations of every algorithm, the
// calendar window included, on a Redis Cluster of three masters, with keys
// on every master: Peek sees what AllowN spent, SettleN charges and
// refunds, and Reset gives the whole burst back.
func TestClusterQuota(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	rdb := c.Client()
	ks := keyspace(t)
	ctx := t.Context()
	skipNearMidnight(t, time.Now().UnixMicro())
	for _, x := range quotaAlgorithms(t, ratelimit.Per(6, 24*time.Hour)) {
		t.Run("alg="+x.alg.Name(), func(t *testing.T) {
			if cal, ok := x.alg.(CalendarWindow); ok {
				skipNearWindowEnd(t, cal, time.Now().UnixMicro())
			}
			l := newLimiter(t, rdb, x.lim, WithAlgorithm(x.alg), WithKeyspace(ks), WithLogger(quietLog), WithTimeout(5*time.Second))
			masters := map[*redistest.Server]bool{}
			for i := range 9 {
				key := fmt.Sprintf("quota%d", i)
				masters[c.MasterOf(t, clientKey(t, ks, key, x.alg))] = true
				if d, err := l.AllowN(ctx, key, 2); err != nil || !d.Allowed {
					t.Fatalf("key %s: AllowN(2): %+v, %v", key, d, err)
				}
				if err := l.SettleN(ctx, key, 2, 5); err != nil {
					t.Fatalf("key %s: SettleN(2, 5): %v", key, err)
				}
				if d, err := l.Peek(ctx, key); err != nil || d.Remaining != 1 {
					t.Fatalf("key %s: Peek after a cost of 5: %+v, %v", key, d, err)
				}
				if err := l.SettleN(ctx, key, 4, 0); err != nil {
					t.Fatalf("key %s: SettleN(4, 0): %v", key, err)
				}
				if d, err := l.Peek(ctx, key); err != nil || d.Remaining != 5 {
					t.Fatalf("key %s: Peek after a refund of 4: %+v, %v", key, d, err)
				}
				if err := l.Reset(ctx, key); err != nil {
					t.Fatalf("key %s: Reset: %v", key, err)
				}
				if d, err := l.Peek(ctx, key); err != nil || d.Remaining != 6 || d.ResetAfter != 0 {
					t.Fatalf("key %s: Peek after Reset: %+v, %v", key, d, err)
				}
			}
			if len(masters) != 3 {
				t.Fatalf("keys on %d masters, want 3", len(masters))
			}
		})
	}
}
