package lease_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/algorithms"
	"github.com/distributedratelimiter/ratelimit/lease"
)

// oneTokenBucket is an in-memory Bucket that grants one token to every
// take and keeps no state per key, so the limiter is the only thing whose
// memory grows with the keys.
type oneTokenBucket struct {
	quotaless
	takes, gives atomic.Int64
}

func (b *oneTokenBucket) TakeUpTo(_ context.Context, _ string, lim ratelimit.Limit, n int, _ algorithms.Charge) (algorithms.Grant, error) {
	b.takes.Add(1)
	return algorithms.Grant{Granted: 1, Remaining: lim.Burst - 1}, nil
}

func (b *oneTokenBucket) Return(_ context.Context, _ string, lim ratelimit.Limit, n int) error {
	b.gives.Add(1)
	return nil
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// keyName returns the i-th distinct client key.
func keyName(i int) string { return "client-" + strconv.Itoa(i) }

// maxEntryBytes bounds what one tracked key may cost: the entry itself
// (160 bytes, see TestEntrySize, plus 160 for a key Redis limited or could
// not serve, reset or refunded: its extra state), the strings
// it keeps (under 64 bytes each here), its grants and the map's node for
// it (under 100 bytes each), with room to spare. The doc's figure is
// about 200 bytes plus the key.
const maxEntryBytes = 1 << 10

// TestMemoryBoundedUnderKeyChurn sends one million distinct keys through
// a leasing limiter capped at 10,000 keys whose idle keys are evicted
// after a second: keys beyond the cap are checked without an entry, and
// once the first keys are idle, entries are evicted and created again
// (how many of each depends on the machine's speed). The number of
// tracked keys never exceeds the cap (but see below), and the live heap
// afterwards stays below the cap times maxEntryBytes above what it was
// before.
//
// Under -race, which makes creating and evicting entries ten times
// slower, or with -short, it sends 40,000 keys with no eviction (a few
// seconds): the cap fills, then every key is checked without an entry.
//
// The cap is a hard one: a creator takes its place under the cap before it
// stores its entry, so concurrent creators never overshoot it.
func TestMemoryBoundedUnderKeyChurn(t *testing.T) {
	const maxKeys = 10_000
	keys, idle := 1_000_000, time.Second
	if raceEnabled || testing.Short() {
		keys, idle = 40_000, time.Hour
	}
	b := &oneTokenBucket{}
	base := liveHeap()
	// A refill timeout far above what a loaded machine needs: every call
	// must be decided by the bucket, never by the failure policy.
	l, err := lease.New(nil, ratelimit.PerSecond(100), lease.WithBucket(b), lease.WithMaxKeys(maxKeys), lease.WithMaxWait(5*time.Second),
		lease.WithLeaseTTL(idle), lease.WithIdleTimeout(idle), lease.WithRefillTimeout(10*time.Second),
		lease.WithLogger(quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close(context.Background()) }()

	start := time.Now()
	const workers = 4
	var next atomic.Int64
	var maxSeen atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			ctx := context.Background()
			for {
				i := int(next.Add(1)) - 1
				if i >= keys {
					return
				}
				d, err := l.Allow(ctx, keyName(i))
				if err != nil || !d.Allowed || d.Source == ratelimit.SourceFallback {
					t.Errorf("key %d: %+v, %v; want admitted", i, d, err)
					return
				}
				if i%1_000 == 0 {
					if k := l.Stats().Keys; k > maxSeen.Load() {
						maxSeen.Store(k)
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	s := l.Stats()
	if m := max(maxSeen.Load(), s.Keys); m > maxKeys {
		t.Errorf("tracked %d keys, want at most the cap %d", m, maxKeys)
	}
	// Every key made an entry (still tracked or evicted since) or was
	// checked without one.
	if s.Keys+s.Evicted+s.Overflow < int64(keys) || s.Overflow == 0 {
		t.Errorf("stats %+v: %d keys are not all tracked, evicted or checked beyond the cap", s, keys)
	}
	live := liveHeap()
	bound := base + maxKeys*maxEntryBytes
	if live > bound {
		t.Errorf("live heap %d KiB after %d keys, want at most %d KiB (%d KiB before + %d keys × %d B)",
			live>>10, keys, bound>>10, base>>10, maxKeys, maxEntryBytes)
	}
	t.Logf("%d keys in %v (%.0f/s): at most %d tracked at once, %d evicted, %d checked beyond the cap; live heap %d KiB before, %d KiB after (bound %d KiB)",
		keys, took.Round(time.Millisecond), float64(keys)/took.Seconds(), max(maxSeen.Load(), s.Keys), s.Evicted, s.Overflow,
		base>>10, live>>10, bound>>10)
	runtime.KeepAlive(l)
}

// maxBytesPerKey bounds what one tracked key costs right after its first
// request: the 160-byte entry, its one grant (16 bytes, dropped by the
// next janitor pass once spent) and its slot in the key table (11 to 16
// bytes), measured at 189 to 192.
const maxBytesPerKey = 200

// TestMemoryBytesPerKey measures what one tracked key costs: the live heap
// after 100,000 distinct keys (20,000 under -race or -short), each tracked
// (a high cap, no eviction), minus the heap before, per key. Each key is
// "client-" and six digits, made before the baseline: its bytes are not
// counted. The figure is logged; the test fails above
// maxBytesPerKey.
func TestMemoryBytesPerKey(t *testing.T) {
	keys := 100_000
	if raceEnabled || testing.Short() {
		keys = 20_000
	}
	b := &oneTokenBucket{}
	names := make([]string, keys) // made before the baseline: the caller owns them
	for i := range names {
		names[i] = keyName(100_000 + i)
	}
	base := liveHeap()
	l, err := lease.New(nil, ratelimit.PerSecond(100), lease.WithBucket(b), lease.WithMaxKeys(10*keys), lease.WithMaxWait(5*time.Second),
		lease.WithLeaseTTL(time.Hour), lease.WithIdleTimeout(time.Hour), lease.WithRefillTimeout(10*time.Second),
		lease.WithLogger(quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close(context.Background()) }()
	ctx := context.Background()
	for _, key := range names {
		if d, err := l.Allow(ctx, key); err != nil || !d.Allowed {
			t.Fatalf("key %s: %+v, %v; want admitted", key, d, err)
		}
	}
	if s := l.Stats(); s.Keys != int64(keys) {
		t.Fatalf("tracking %d keys, want %d", s.Keys, keys)
	}
	live := liveHeap()
	per := float64(int64(live)-int64(base)) / float64(keys)
	t.Logf("%d tracked keys: live heap %d KiB before, %d KiB after: %.0f bytes per key (all the limiter keeps per key; the client key string is the caller's)",
		keys, base>>10, live>>10, per)
	if per > maxBytesPerKey {
		t.Errorf("%.0f bytes per tracked key, want at most %d", per, maxBytesPerKey)
	}
	runtime.KeepAlive(l)
	runtime.KeepAlive(names)
}
