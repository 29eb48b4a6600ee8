package keytable

// Each benchmark runs the Table and a sync.Map (from string to *item, used
// as the lease package uses its entries) side by side: impl=keytable and
// impl=syncmap.
//
// Figures on a 2-core VM (AMD EPYC, Go 1.26.8, linux/amd64), from
//
//	go test -run x -bench . -cpu 1,2 -count 10 ./internal/keytable/
//
// as medians of the 10 runs [min..max]; allocs/op and B/key did not vary:
//
//	                               -cpu 1                      -cpu 2               allocs/op
//	Load keys=1      keytable     21.0 ns [14.2..24.9]        10.5 ns [7.7..11.7]     0
//	                 syncmap      24.0 ns [18.1..31.8]        13.0 ns [11.5..14.6]    0
//	Load keys=10000  keytable     47.1 ns [30.9..53.1]        24.2 ns [17.5..33.8]    0
//	                 syncmap      40.3 ns [39.1..50.1]        22.2 ns [18.9..28.8]    0
//	LoadOrStoreNew   keytable     1428 ns [1266..1509]        1089 ns [1020..1130]    0 (38 B/op: arrays, amortized)
//	                 syncmap      1274 ns [1094..1580]         811 ns [650..1024]     2 (121-126 B/op)
//	Memory (100,000 keys)         keytable 12.8-13.0 B/key, syncmap 126 B/key
//
// The VM's speed drifts by up to 40% within a minute, and -count runs
// one implementation's 10 runs before the other's, so the ranges overlap.
// Alternating the two hot-key loops 15 times in one process (a throwaway
// test calling testing.Benchmark) gave medians of 17.7 ns (keytable) vs
// 26.1 ns (syncmap) with GOMAXPROCS 1, and 10.6 vs 14.6 ns with 2. Of a
// hot-key Load, hash/maphash takes about 6 ns on this VM. Storing new keys
// is slower than sync.Map: the slots hold no hashes, so each probed
// value's key is read from memory, and each rebuild rehashes every value
// it moves (about 3 moves per key as a table grows by 1.5 at a time).

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// The loops below call each implementation directly, not through an
// interface, so ns/op holds no extra dynamic call.

// BenchmarkLoad loads present keys from every goroutine: keys=1 is one hot
// key, keys=10000 each goroutine walking all the keys from its own start.
func BenchmarkLoad(b *testing.B) {
	for _, nkeys := range []int{1, 10_000} {
		items := newItems(keyNames("client-", nkeys))
		name := "keys=" + strconv.Itoa(nkeys)
		b.Run(name+"/impl=keytable", func(b *testing.B) {
			tab := New(itemKey)
			for _, v := range items {
				tab.LoadOrStore(v.key, v)
			}
			var start atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(7919)) % nkeys
				for pb.Next() {
					if tab.Load(items[i].key) == nil {
						b.Error("key missing")
						return
					}
					if i++; i == nkeys {
						i = 0
					}
				}
			})
		})
		b.Run(name+"/impl=syncmap", func(b *testing.B) {
			var m sync.Map
			for _, v := range items {
				m.LoadOrStore(v.key, v)
			}
			var start atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(7919)) % nkeys
				for pb.Next() {
					if v, ok := m.Load(items[i].key); !ok || v.(*item) == nil {
						b.Error("key missing")
						return
					}
					if i++; i == nkeys {
						i = 0
					}
				}
			})
		})
	}
}

// BenchmarkLoadOrStoreNew stores b.N distinct new keys into an empty
// table, all goroutines together; the keys and values are made before the
// timer starts.
func BenchmarkLoadOrStoreNew(b *testing.B) {
	b.Run("impl=keytable", func(b *testing.B) {
		items := newItems(keyNames("client-", b.N))
		tab := New(itemKey)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				v := items[next.Add(1)-1]
				if _, loaded := tab.LoadOrStore(v.key, v); loaded {
					b.Error("new key loaded")
					return
				}
			}
		})
	})
	b.Run("impl=syncmap", func(b *testing.B) {
		items := newItems(keyNames("client-", b.N))
		var m sync.Map
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				v := items[next.Add(1)-1]
				if _, loaded := m.LoadOrStore(v.key, v); loaded {
					b.Error("new key loaded")
					return
				}
			}
		})
	})
}

// BenchmarkMemory reports what each implementation's heap grows by per
// key for 100,000 keys (B/key), besides the keys and values themselves
// (see TestMemoryPerKey). Its ns/op is the whole measurement.
func BenchmarkMemory(b *testing.B) {
	const n = 100_000
	for _, impl := range []struct {
		name    string
		measure func(int) float64
	}{
		{"keytable", func(n int) float64 { return tableBytesPerKey(n, 1) }},
		{"syncmap", syncMapBytesPerKey},
	} {
		b.Run("keys=100000/impl="+impl.name, func(b *testing.B) {
			var perKey float64
			for range b.N {
				perKey = impl.measure(n)
			}
			b.ReportMetric(perKey, "B/key")
		})
	}
}
