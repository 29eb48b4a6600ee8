package stripe

import (
	"sync"
	"testing"
)

func TestCounterSumsConcurrentAdds(t *testing.T) {
	c := New()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Go(func() {
			for i := 0; i < 10_000; i++ {
				c.Add(1)
			}
		})
	}
	wg.Wait()
	c.Add(-5)
	if got := c.Load(); got != 16*10_000-5 {
		t.Fatalf("Load() = %d, want %d", got, 16*10_000-5)
	}
	if n := len(c.cells); n&(n-1) != 0 || n > maxCells {
		t.Fatalf("%d cells, want a power of two up to %d", n, maxCells)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	c := New()
	if a := testing.AllocsPerRun(1000, func() { c.Add(1) }); a != 0 {
		t.Fatalf("Add allocates %v times, want 0", a)
	}
}

func BenchmarkAdd(b *testing.B) {
	c := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}
