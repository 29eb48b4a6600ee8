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
			first := Pick(shift, 0)
			for i := 0; i < 100; i++ {
				if p := Pick(shift, 0); p != first {
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
	if a := testing.AllocsPerRun(1000, func() { _ = Pick(shift, 0) }); a != 0 {
		t.Fatalf("Pick allocates %v times, want 0", a)
	}
}

// TestPickSaltDealsAnew: for one goroutine in one frame, the pick is the
// same for a given salt, and the salts 0 to 63 deal it more than one cell
// (Cells gives at least four): a structure that changes its salt moves
// two goroutines that met apart.
func TestPickSaltDealsAnew(t *testing.T) {
	n, shift := Cells()
	seen := map[int]bool{}
	for salt := uint64(0); salt < 64; salt++ {
		p := Pick(shift, salt)
		if q := Pick(shift, salt); q != p {
			t.Fatalf("salt %d: Pick gave %d, then %d", salt, p, q)
		}
		if p < 0 || p >= n {
			t.Fatalf("salt %d: Pick() = %d, want in [0, %d)", salt, p, n)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Fatalf("64 salts all picked cell %v of %d", seen, n)
	}
}
