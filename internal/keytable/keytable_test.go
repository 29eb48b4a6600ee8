package keytable

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// item is the value type of the tests: a small struct that carries its key.
type item struct {
	key string
	n   int
}

func itemKey(v *item) string { return v.key }

func newItems(keys []string) []*item {
	items := make([]*item, len(keys))
	for i, k := range keys {
		items[i] = &item{key: k, n: i}
	}
	return items
}

func keyNames(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// checkInvariants checks, with no writer running, every shard's
// structure: its counters match its slots, at most 3/4 of the slots are
// non-nil, every value lies in its own shard, is reachable from its home
// slot without crossing an empty slot, and appears once, and no key
// appears twice.
func checkInvariants[T any](t testing.TB, tab *Table[T]) {
	t.Helper()
	seen := make(map[*T]bool)
	keys := make(map[string]bool)
	for si := range tab.shards {
		s := &tab.shards[si]
		a := s.arr.Load()
		if a == nil {
			if s.live.Load() != 0 || s.dead != 0 {
				t.Fatalf("shard %d: no array but live=%d dead=%d", si, s.live.Load(), s.dead)
			}
			continue
		}
		n := len(a.slots)
		var live, dead int
		for i := range a.slots {
			p := a.slots[i].Load()
			switch {
			case p == nil:
				continue
			case p == tab.tomb:
				dead++
				continue
			}
			live++
			k := tab.key(p)
			if seen[p] || keys[k] {
				t.Fatalf("shard %d: value or key %q stored twice", si, k)
			}
			seen[p], keys[k] = true, true
			h, hs := tab.hash(k)
			if hs != s {
				t.Fatalf("key %q in shard %d, not its own", k, si)
			}
			for j := home(h, n); j != i; j = (j + 1) % n {
				if a.slots[j].Load() == nil {
					t.Fatalf("shard %d: key %q at slot %d cut off from its home by empty slot %d", si, k, i, j)
				}
			}
		}
		if live != int(s.live.Load()) || dead != s.dead {
			t.Fatalf("shard %d: counted live=%d dead=%d, slots hold %d and %d", si, s.live.Load(), s.dead, live, dead)
		}
		if 4*(live+dead) > 3*n {
			t.Fatalf("shard %d: %d values + %d tombstones in %d slots, over 3/4", si, live, dead, n)
		}
		if 8*live < 3*n && n > minSlots {
			t.Fatalf("shard %d: %d values in %d slots, under 3/8", si, live, n)
		}
	}
	if len(seen) != tab.Len() {
		t.Fatalf("Len() = %d, slots hold %d values", tab.Len(), len(seen))
	}
}

// probeStats describes the probe lengths of a table with no writer
// running, counted in slots read (1 for a value in its home slot): the
// average and maximum over the stored values (a hit), the average over
// every possible home slot of a probe for an absent key (a miss), and the
// overall load (non-nil slots over slots).
type probeStats struct {
	hitAvg  float64
	hitMax  int
	missAvg float64
	load    float64
}

func probes[T any](tab *Table[T]) probeStats {
	var st probeStats
	var hits, hitSum, slots, missSum, used int
	for si := range tab.shards {
		a := tab.shards[si].arr.Load()
		if a == nil {
			continue
		}
		n := len(a.slots)
		slots += n
		// A miss whose home is in a run of r non-nil slots, k slots from
		// its end, reads k+1 slots; one whose home is nil reads 1. Sum over
		// the runs, starting after an empty slot (there always is one).
		start := 0
		for a.slots[start].Load() != nil {
			start++
		}
		run := 0
		for j := 1; j <= n; j++ {
			if a.slots[(start+j)%n].Load() != nil {
				run++
				continue
			}
			missSum += run*(run+1)/2 + run + 1
			run = 0
		}
		for i := range a.slots {
			p := a.slots[i].Load()
			if p == nil {
				continue
			}
			used++
			if p == tab.tomb {
				continue
			}
			h, _ := tab.hash(tab.key(p))
			d := (i-home(h, n)+n)%n + 1
			hits++
			hitSum += d
			st.hitMax = max(st.hitMax, d)
		}
	}
	if hits > 0 {
		st.hitAvg = float64(hitSum) / float64(hits)
	}
	if slots > 0 {
		st.missAvg = float64(missSum) / float64(slots)
		st.load = float64(used) / float64(slots)
	}
	return st
}

// slotCount returns the slots of all the table's arrays.
func slotCount[T any](tab *Table[T]) int {
	n := 0
	for si := range tab.shards {
		if a := tab.shards[si].arr.Load(); a != nil {
			n += len(a.slots)
		}
	}
	return n
}

func TestSteps(t *testing.T) {
	tab := New(itemKey)
	a1, a2, b1 := &item{key: "a"}, &item{key: "a"}, &item{key: "b"}
	steps := []struct {
		op      string // load, store, delete
		key     string
		v       *item
		want    *item // load: result; store: actual
		wantOK  bool  // store: loaded; delete: deleted
		wantLen int
	}{
		{op: "load", key: "a", want: nil, wantLen: 0},
		{op: "delete", key: "a", v: a1, wantOK: false, wantLen: 0},
		{op: "store", key: "a", v: a1, want: a1, wantOK: false, wantLen: 1},
		{op: "store", key: "a", v: a2, want: a1, wantOK: true, wantLen: 1},
		{op: "load", key: "a", want: a1, wantLen: 1},
		{op: "load", key: "b", want: nil, wantLen: 1},
		{op: "delete", key: "a", v: a2, wantOK: false, wantLen: 1}, // not a's value
		{op: "delete", key: "b", v: a1, wantOK: false, wantLen: 1}, // a1 is not b's
		{op: "store", key: "b", v: b1, want: b1, wantOK: false, wantLen: 2},
		{op: "delete", key: "a", v: a1, wantOK: true, wantLen: 1},
		{op: "delete", key: "a", v: a1, wantOK: false, wantLen: 1},
		{op: "load", key: "a", want: nil, wantLen: 1},
		{op: "load", key: "b", want: b1, wantLen: 1},
		{op: "store", key: "a", v: a2, want: a2, wantOK: false, wantLen: 2}, // reuses the tombstone
		{op: "load", key: "a", want: a2, wantLen: 2},
		{op: "delete", key: "b", v: nil, wantOK: false, wantLen: 2},
	}
	for i, s := range steps {
		var got *item
		var ok bool
		switch s.op {
		case "load":
			got = tab.Load(s.key)
		case "store":
			got, ok = tab.LoadOrStore(s.key, s.v)
		case "delete":
			ok = tab.CompareAndDelete(s.key, s.v)
		}
		if got != s.want || ok != s.wantOK {
			t.Fatalf("step %d: %s(%q) = %v, %v; want %v, %v", i, s.op, s.key, got, ok, s.want, s.wantOK)
		}
		if n := tab.Len(); n != s.wantLen {
			t.Fatalf("step %d: Len() = %d, want %d", i, n, s.wantLen)
		}
		checkInvariants(t, tab)
	}
}

func TestNewAndStorePanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"nil key", func() { New[item](nil) }},
		{"zero-size type", func() { New(func(*struct{}) string { return "" }) }},
		{"nil value", func() { New(itemKey).LoadOrStore("a", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}

// TestGrowAndShrink stores keys until every shard has rebuilt several
// times, deletes them all, and checks the arrays grow and shrink back.
func TestGrowAndShrink(t *testing.T) {
	tab := New(itemKey)
	items := newItems(keyNames("k", 20_000))
	for i, v := range items {
		if _, loaded := tab.LoadOrStore(v.key, v); loaded {
			t.Fatalf("key %q loaded on first store", v.key)
		}
		if i%4999 == 0 {
			checkInvariants(t, tab)
		}
	}
	checkInvariants(t, tab)
	st := probes(tab)
	t.Logf("%d keys in %d slots: load %.2f, probes: hit avg %.2f max %d, miss avg %.2f",
		tab.Len(), slotCount(tab), st.load, st.hitAvg, st.hitMax, st.missAvg)
	if st.load < 0.4 || st.load > 0.75 {
		t.Errorf("load %.2f after growth, want within [0.4, 0.75]", st.load)
	}
	for _, v := range items {
		if got := tab.Load(v.key); got != v {
			t.Fatalf("Load(%q) = %v, want %v", v.key, got, v)
		}
	}
	for i, v := range items {
		if !tab.CompareAndDelete(v.key, v) {
			t.Fatalf("CompareAndDelete(%q) = false", v.key)
		}
		if i%4999 == 0 {
			checkInvariants(t, tab)
		}
	}
	checkInvariants(t, tab)
	if n := tab.Len(); n != 0 {
		t.Fatalf("Len() = %d after deleting all", n)
	}
	// Every shard shrank each time it fell under 3/8 full, down to minSlots.
	if n := slotCount(tab); n != numShards*minSlots {
		t.Fatalf("%d slots left after deleting all keys, want %d", n, numShards*minSlots)
	}
	for _, v := range items[:100] {
		if got := tab.Load(v.key); got != nil {
			t.Fatalf("Load(%q) = %v after delete", v.key, got)
		}
	}
}

func TestRange(t *testing.T) {
	tab := New(itemKey)
	items := newItems(keyNames("k", 1000))
	for _, v := range items {
		tab.LoadOrStore(v.key, v)
	}
	seen := make(map[*item]int)
	tab.Range(func(v *item) bool { seen[v]++; return true })
	if len(seen) != len(items) {
		t.Fatalf("Range visited %d values, want %d", len(seen), len(items))
	}
	for _, v := range items {
		if seen[v] != 1 {
			t.Fatalf("Range visited %q %d times", v.key, seen[v])
		}
	}

	calls := 0
	tab.Range(func(*item) bool { calls++; return calls < 10 })
	if calls != 10 {
		t.Fatalf("Range went on after false: %d calls, want 10", calls)
	}

	// f may write to the table, as the lease janitor deletes idle entries
	// from its Range callback: delete the odd ones.
	tab.Range(func(v *item) bool {
		if v.n%2 == 1 && !tab.CompareAndDelete(v.key, v) {
			t.Errorf("CompareAndDelete(%q) in Range = false", v.key)
		}
		return true
	})
	checkInvariants(t, tab)
	if n := tab.Len(); n != len(items)/2 {
		t.Fatalf("Len() = %d after deleting the odd half, want %d", n, len(items)/2)
	}
	for _, v := range items {
		if got, want := tab.Load(v.key) != nil, v.n%2 == 0; got != want {
			t.Fatalf("Load(%q) present = %v, want %v", v.key, got, want)
		}
	}
	New(itemKey).Range(func(*item) bool { t.Fatal("Range of an empty table called f"); return true })
}

// TestSeedPerTable checks that two tables hash the same key differently:
// the seed is random per table, so a client cannot precompute keys that
// collide in every process.
func TestSeedPerTable(t *testing.T) {
	a, b := New(itemKey), New(itemKey)
	same := 0
	for _, k := range keyNames("k", 64) {
		if maphash.String(a.seed, k) == maphash.String(b.seed, k) {
			same++
		}
	}
	if same == 64 {
		t.Fatal("two tables hash 64 keys identically: the seed is not per table")
	}
}

// maxProbe bounds the longest probe for one stored value in the tests.
// With linear probing and a uniform hash the longest run in a shard of m
// keys at load α grows like ln(m)/(α-1-ln α): about 200 slots for the
// 1,500 keys of a shard of a 100,000-key table at α = 3/4, 100 to 200
// measured, and each slot more is about 4% less likely. A hash that
// ignored the keys' tails, or home slots drawn from the shard's bits,
// would put a whole shard (over 1,000 keys) on one run.
const maxProbe = 1000

// TestProbesOfSimilarKeys stores keys that differ only in a short
// tail after a long common prefix (API keys, IPs in one subnet, paths) and
// checks the probes stay short at every size up to 100,000 keys, so also
// just before the shards grow, near load 3/4. Linear probing with a
// uniform hash reads (1 + 1/(1-α))/2 slots per hit on average, 2.5 at α =
// 3/4, and (1 + 1/(1-α)²)/2 per miss, 8.5 at 3/4. The bounds leave a
// margin over those figures that averages over 100,000 keys never use up;
// colliding keys would pass them by orders of magnitude.
func TestProbesOfSimilarKeys(t *testing.T) {
	n, every := 100_000, 2_500
	if raceEnabled {
		every = 10_000 // instrumented atomics make each check slow
	}
	for _, tc := range []struct {
		name string
		key  func(i int) string
	}{
		{"api keys", func(i int) string { return fmt.Sprintf("sk_live_%s%08d", strings.Repeat("0", 40), i) }},
		{"ipv4 /16", func(i int) string { return fmt.Sprintf("10.20.%d.%d", i>>8, i&255) }},
		{"ipv6 /64", func(i int) string { return fmt.Sprintf("2001:db8:85a3:8d3:1319:8a2e:%x:%x", i>>16, i&0xffff) }},
		{"long paths", func(i int) string { return strings.Repeat("/tenant/acme/api/v1", 50) + strconv.Itoa(i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := New(itemKey)
			var worst probeStats
			for i := range n {
				v := &item{key: tc.key(i), n: i}
				if _, loaded := tab.LoadOrStore(v.key, v); loaded {
					t.Fatalf("key %q generated twice", v.key)
				}
				if i%every == every-1 {
					st := probes(tab)
					worst.hitAvg = max(worst.hitAvg, st.hitAvg)
					worst.hitMax = max(worst.hitMax, st.hitMax)
					worst.missAvg = max(worst.missAvg, st.missAvg)
					worst.load = max(worst.load, st.load)
				}
			}
			t.Logf("up to %d keys, worst: load %.3f, hit avg %.2f max %d, miss avg %.2f",
				n, worst.load, worst.hitAvg, worst.hitMax, worst.missAvg)
			if worst.hitAvg > 3 || worst.hitMax > maxProbe || worst.missAvg > 14 {
				t.Fatalf("probes too long: hit avg %.2f (want ≤ 3) max %d (want ≤ %d), miss avg %.2f (want ≤ 14)",
					worst.hitAvg, worst.hitMax, maxProbe, worst.missAvg)
			}
		})
	}
}

// TestChurnStaysBounded runs endless key eviction: every step stores a new
// key and deletes the oldest, keeping window keys live, through 100 times
// window distinct keys. Tombstones must not pile up: the slot count stays
// within a constant factor of the live keys, the load (values and
// tombstones) within 3/4, and probes short.
func TestChurnStaysBounded(t *testing.T) {
	const window = 4096
	steps := 100 * window
	if raceEnabled {
		steps = 30 * window
	}
	tab := New(itemKey)
	ring := make([]*item, window)
	maxSlots := 0
	var worst probeStats
	for i := range steps {
		v := &item{key: "churn-" + strconv.Itoa(i), n: i}
		if _, loaded := tab.LoadOrStore(v.key, v); loaded {
			t.Fatalf("new key %q loaded", v.key)
		}
		j := i % window
		if old := ring[j]; old != nil && !tab.CompareAndDelete(old.key, old) {
			t.Fatalf("CompareAndDelete(%q) = false", old.key)
		}
		ring[j] = v
		maxSlots = max(maxSlots, slotCount(tab))
		if i%(window/2) == window/2-1 {
			checkInvariants(t, tab)
			st := probes(tab)
			worst.hitAvg = max(worst.hitAvg, st.hitAvg)
			worst.hitMax = max(worst.hitMax, st.hitMax)
			worst.missAvg = max(worst.missAvg, st.missAvg)
			worst.load = max(worst.load, st.load)
		}
	}
	if n := tab.Len(); n != window {
		t.Fatalf("Len() = %d, want %d", n, window)
	}
	t.Logf("%d steps, %d live: at most %d slots (%.1f per key); worst: load %.2f, hit avg %.2f max %d, miss avg %.2f",
		steps, window, maxSlots, float64(maxSlots)/window, worst.load, worst.hitAvg, worst.hitMax, worst.missAvg)
	// Every shard keeps at least 3/8 of its slots holding values (checked
	// above); that is 8/3 slots per key, plus the minimum arrays.
	if limit := window*8/3 + numShards*minSlots; maxSlots > limit {
		t.Fatalf("churn grew the table to %d slots for %d keys, want at most %d", maxSlots, window, limit)
	}
	if worst.load > 0.75 || worst.hitAvg > 3 || worst.hitMax > maxProbe || worst.missAvg > 14 {
		t.Fatalf("churn degraded probes: load %.2f, hit avg %.2f max %d, miss avg %.2f", worst.load, worst.hitAvg, worst.hitMax, worst.missAvg)
	}
	for _, v := range ring {
		if tab.Load(v.key) != v {
			t.Fatalf("Load(%q) lost a live key", v.key)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	tab := New(itemKey)
	items := newItems(keyNames("k", 1000))
	for _, v := range items {
		tab.LoadOrStore(v.key, v)
	}
	hot, absent := items[500], "absent-key"
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Load hit", func() { tab.Load(hot.key) }},
		{"Load miss", func() { tab.Load(absent) }},
		{"LoadOrStore present", func() { tab.LoadOrStore(hot.key, items[0]) }},
		{"CompareAndDelete other value", func() { tab.CompareAndDelete(hot.key, items[0]) }},
		{"Len", func() { tab.Len() }},
	} {
		if a := testing.AllocsPerRun(1000, tc.f); a != 0 {
			t.Errorf("%s allocates %v times, want 0", tc.name, a)
		}
	}
}

func TestShardLayout(t *testing.T) {
	if got := reflect.TypeFor[shard[item]]().Size(); got != 2*cacheLine {
		t.Fatalf("shard is %d bytes, want %d (two cache lines)", got, 2*cacheLine)
	}
}

// TestOneWinnerPerKey runs many goroutines storing their own value under
// each of the same keys: exactly one store per key wins, and every other
// call returns the winner's value.
func TestOneWinnerPerKey(t *testing.T) {
	const goroutines, nkeys = 8, 5000
	tab := New(itemKey)
	keys := keyNames("k", nkeys)
	got := make([][]*item, goroutines) // got[g][k]: what goroutine g's LoadOrStore returned for key k
	wins := make([]atomic.Int32, nkeys)
	var wg sync.WaitGroup
	for g := range goroutines {
		got[g] = make([]*item, nkeys)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for _, k := range r.Perm(nkeys) {
				v := &item{key: keys[k], n: g}
				actual, loaded := tab.LoadOrStore(v.key, v)
				if loaded == (actual == v) {
					t.Errorf("LoadOrStore(%q) = %p, %v with v = %p", v.key, actual, loaded, v)
				}
				if !loaded {
					wins[k].Add(1)
				}
				got[g][k] = actual
			}
		})
	}
	wg.Wait()
	checkInvariants(t, tab)
	if n := tab.Len(); n != nkeys {
		t.Fatalf("Len() = %d, want %d", n, nkeys)
	}
	for k, key := range keys {
		if w := wins[k].Load(); w != 1 {
			t.Fatalf("key %q: %d winning stores, want 1", key, w)
		}
		winner := tab.Load(key)
		for g := range goroutines {
			if got[g][k] != winner {
				t.Fatalf("key %q: goroutine %d got %p, the table holds %p", key, g, got[g][k], winner)
			}
		}
	}
}

// TestConcurrentOps runs goroutines doing Load, LoadOrStore,
// CompareAndDelete and Range on overlapping keys, in phases that fill and
// empty the table so shards grow and shrink, and counts the stores and
// deletes that succeeded per key. Afterwards each key must be present
// exactly when its stores outnumber its deletes (by one, never more), Len
// must be their sum, and Range and Load must agree.
func TestConcurrentOps(t *testing.T) {
	const goroutines, nkeys = 8, 3000
	ops := 30_000
	if raceEnabled {
		ops = 10_000
	}
	tab := New(itemKey)
	keys := keyNames("mixed-", nkeys)
	var stores, deletes [nkeys]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for op := range ops {
				k := r.IntN(nkeys)
				key := keys[k]
				filling := op/2000%2 == 0 // alternate phases that mostly store and mostly delete
				x := r.IntN(100)
				switch {
				case x < 2:
					n := 0
					tab.Range(func(v *item) bool {
						if !strings.HasPrefix(v.key, "mixed-") {
							t.Errorf("Range visited a value with key %q", v.key)
						}
						n++
						return n < 500
					})
				case filling && x < 60 || !filling && x < 20:
					v := &item{key: key, n: g}
					actual, loaded := tab.LoadOrStore(key, v)
					if !loaded {
						stores[k].Add(1)
					}
					if actual == nil || actual.key != key {
						t.Errorf("LoadOrStore(%q) returned %v", key, actual)
					}
				case x < 80:
					if p := tab.Load(key); p != nil {
						if p.key != key {
							t.Errorf("Load(%q) returned a value of key %q", key, p.key)
						}
						if tab.CompareAndDelete(key, p) {
							deletes[k].Add(1)
						}
					}
				default:
					if p := tab.Load(key); p != nil && p.key != key {
						t.Errorf("Load(%q) returned a value of key %q", key, p.key)
					}
				}
			}
		})
	}
	wg.Wait()
	checkInvariants(t, tab)
	present := 0
	for k, key := range keys {
		d := stores[k].Load() - deletes[k].Load()
		if d != 0 && d != 1 {
			t.Fatalf("key %q: %d stores, %d deletes", key, stores[k].Load(), deletes[k].Load())
		}
		if got := tab.Load(key) != nil; got != (d == 1) {
			t.Fatalf("key %q: Load found it = %v, stores - deletes = %d", key, got, d)
		}
		present += int(d)
	}
	if n := tab.Len(); n != present {
		t.Fatalf("Len() = %d, want %d", n, present)
	}
	visited := 0
	tab.Range(func(v *item) bool {
		if tab.Load(v.key) != v {
			t.Fatalf("Range visited %q, which Load does not return", v.key)
		}
		visited++
		return true
	})
	if visited != present {
		t.Fatalf("Range visited %d values, want %d", visited, present)
	}
	t.Logf("%d of %d keys present at the end", present, nkeys)
}

// TestReadersDuringRebuilds keeps a set of keys stored throughout while
// writers store and delete other keys in every shard, forcing many grows,
// shrinks and in-place rebuilds. Load must find every permanent key every
// time, whichever array it probes, and each Range must visit each
// permanent value exactly once.
func TestReadersDuringRebuilds(t *testing.T) {
	const permanent, writers, readers = 512, 2, 2
	churn := 20_000
	rounds := 6
	if raceEnabled {
		rounds = 2
	}
	tab := New(itemKey)
	perm := newItems(keyNames("perm-", permanent))
	for _, v := range perm {
		tab.LoadOrStore(v.key, v)
	}
	var stop atomic.Bool
	var wgW, wgR sync.WaitGroup
	for w := range writers {
		wgW.Go(func() {
			for round := range rounds {
				batch := make([]*item, churn)
				for i := range batch {
					batch[i] = &item{key: fmt.Sprintf("churn-%d-%d-%d", w, round, i)}
					tab.LoadOrStore(batch[i].key, batch[i])
				}
				for _, v := range batch {
					if !tab.CompareAndDelete(v.key, v) {
						t.Errorf("CompareAndDelete(%q) = false", v.key)
					}
				}
			}
		})
	}
	var loads, ranges atomic.Int64
	for range readers {
		wgR.Go(func() {
			for pass := 0; !stop.Load(); pass++ {
				for _, v := range perm {
					if got := tab.Load(v.key); got != v {
						t.Errorf("Load(%q) = %v during rebuilds, want %v", v.key, got, v)
						return
					}
				}
				loads.Add(permanent)
				if pass%8 == 0 {
					seen := make(map[*item]int, permanent)
					tab.Range(func(v *item) bool {
						if strings.HasPrefix(v.key, "perm-") {
							seen[v]++
						}
						return true
					})
					for _, v := range perm {
						if seen[v] != 1 {
							t.Errorf("Range visited permanent %q %d times, want 1", v.key, seen[v])
							return
						}
					}
					ranges.Add(1)
				}
			}
		})
	}
	wgW.Wait()
	stop.Store(true)
	wgR.Wait()
	checkInvariants(t, tab)
	if n := tab.Len(); n != permanent {
		t.Fatalf("Len() = %d, want %d", n, permanent)
	}
	t.Logf("%d loads and %d ranges of permanent keys during churn", loads.Load(), ranges.Load())
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// tableBytesPerKey stores n values in a new Table, deletes all but every
// keepEvery-th of them (none deleted for 1), and returns the heap the
// table grew by, per value left. The keys and values are allocated before
// the baseline, so only the table itself (shards, arrays, tombstone)
// counts.
func tableBytesPerKey(n, keepEvery int) float64 {
	items := newItems(keyNames("client-", n))
	before := liveHeap()
	tab := New(itemKey)
	for _, v := range items {
		tab.LoadOrStore(v.key, v)
	}
	for i, v := range items {
		if i%keepEvery != 0 {
			tab.CompareAndDelete(v.key, v)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(tab)
	runtime.KeepAlive(items)
	return float64(int64(after)-int64(before)) / float64(tab.Len())
}

// syncMapBytesPerKey is tableBytesPerKey for a sync.Map from string to
// *item, stored as the lease package stores its entries (the key boxed
// into an interface value by Store).
func syncMapBytesPerKey(n int) float64 {
	items := newItems(keyNames("client-", n))
	before := liveHeap()
	var m sync.Map
	for _, v := range items {
		m.LoadOrStore(v.key, v)
	}
	after := liveHeap()
	runtime.KeepAlive(&m)
	runtime.KeepAlive(items)
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestMemoryPerKey checks what the table costs per key beside its values:
// 8 bytes per slot at a load between 1/2 and 3/4 after growing (10.7 to 16
// bytes), or at least 3/8 after deletes (at most 21.3 bytes), plus the
// shard headers (8 KiB per table). The bound is generous so that only a
// regression (say, a doubling) fails.
func TestMemoryPerKey(t *testing.T) {
	const n = 100_000 // -race does not change heap object sizes, only speed
	grown := tableBytesPerKey(n, 1)
	t.Logf("table: %.1f B/key for %d keys (sync.Map: %.1f B/key)", grown, n, syncMapBytesPerKey(n))
	// Deleting two thirds of the keys shrinks the shards; tombstones and
	// the slots left between 3/8 and 1/2 full cost the rest.
	shrunk := tableBytesPerKey(n, 3)
	t.Logf("table: %.1f B/key after deleting 2 of every 3 keys", shrunk)
	for _, perKey := range []float64{grown, shrunk} {
		if perKey > 48 {
			t.Fatalf("table costs %.1f B/key, want at most 48", perKey)
		}
		if perKey < 4 {
			t.Fatalf("table costs %.1f B/key: the measurement is broken", perKey)
		}
	}
}
