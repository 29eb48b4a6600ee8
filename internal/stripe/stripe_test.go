package stripe

import (
	"sync"
	"testing"
)

func TestCellsIsAPowerOfTwo(t *testing.T) {
	n, shift := Cells()
	if n < 1 || n&(n-1) != 0 || n > maxCells {
		t.Fatalf("Cells() = %d, want a power of two from 1 to %d", n, maxCells)
	}
	if 1<<(64-shift) != n {
		t.Fatalf("Cells() shift %d does not map a hash onto %d cells", shift, n)
	}
}

// TestPickIsInRangeAndStable: every goroutine's pick is a valid index, the
// same on every call from the same frame, and 64 goroutines alive at once
// (so on 64 different stacks) spread over more than one cell when there is
// more than one.
func TestPickIsInRangeAndStable(t *testing.T) {
	n, shift := Cells()
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg, alive sync.WaitGroup
	alive.Add(64)
	for g := 0; g < 64; g++ {
		wg.Go(func() {
			defer alive.Wait() // no stack is freed, and reused, before all picked
			defer alive.Done()
			first := Pick(shift)
			for i := 0; i < 100; i++ {
				if p := Pick(shift); p != first {
					t.Errorf("Pick changed from %d to %d within one goroutine", first, p)
					return
				}
			}
			if first < 0 || first >= n {
				t.Errorf("Pick() = %d, want in [0, %d)", first, n)
			}
			mu.Lock()
			seen[first] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if n > 1 && len(seen) < 2 {
		t.Errorf("64 goroutines all picked cell %v of %d", seen, n)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	_, shift := Cells()
	if a := testing.AllocsPerRun(1000, func() { _ = Pick(shift) }); a != 0 {
		t.Fatalf("Pick allocates %v times, want 0", a)
	}
}
