package lease

import (
	"sync/atomic"

	"github.com/distributedratelimiter/ratelimit/internal/stripe"
)

// stripeMin is the lease size from which a key's tokens are split over
// stripes: below it, a key is not hot enough for callers on several cores
// to contend on its counter.
const stripeMin = 64

// maxStripes bounds the stripes of one key: their memory (128 bytes each)
// is paid per hot key.
const maxStripes = 8

// cell is one stripe of a key's tokens, alone on its cache lines (and on
// the adjacent line that x86 prefetchers fetch in pairs), with the count
// of the key's decisions that spent no leased token made by the callers
// it serves (a key over its limit is denied on every core at once).
type cell struct {
	n        atomic.Int64 // tokens; dead once the entry is evicted
	_        [56]byte     // unleased on the next line: denials write it, and every denial reads n
	unleased atomic.Int64 // see extra.unleased; only grows
	_        [56]byte
}

// stripes split a hot key's leased tokens over padded cells, so that callers
// on different cores take from different cache lines. A caller takes from
// the cell that internal/stripe picks for its goroutine; when it runs dry,
// the slow path spreads the key's tokens over the cells again
// (entry.rebalance), and gathers them into the entry's own counter only
// for a request larger than one cell holds, before it concludes that the
// key has no tokens. Cells only shrink outside the entry's mutex: refills,
// refunds, expiry, eviction, rebalancing and gathering change them with it
// held.
type stripes struct {
	cells []cell
	shift uint
	salt  atomic.Uint64 // deals the callers' cells (stripe.Pick); changed when two meet
}

func newStripes() *stripes {
	n, shift := stripe.Cells()
	if n > maxStripes {
		n, shift = maxStripes, 64-3 // 8 cells
	}
	return &stripes{cells: make([]cell, n), shift: shift}
}

// take spends n tokens from the calling goroutine's cell if it holds them,
// and returns what it left. It never takes a cell below zero and never
// locks. A compare-and-swap that lost to another caller on the same cell
// (most likely on another core: the two would keep trading its cache line)
// changes the salt, which deals every caller a cell anew.
func (s *stripes) take(n int64) (left int64, ok bool) {
	c := &s.mine().n
	for {
		cur := c.Load()
		if cur < n {
			return cur, false
		}
		if c.CompareAndSwap(cur, cur-n) {
			return cur - n, true
		}
		s.salt.Add(1)
	}
}

// mine returns the calling goroutine's cell (as take picks it).
func (s *stripes) mine() *cell { return &s.cells[stripe.Pick(s.shift, s.salt.Load())] }

// unleased returns the decisions counted in the cells' unleased.
func (s *stripes) unleased() int64 {
	var t int64
	for i := range s.cells {
		t += s.cells[i].unleased.Load()
	}
	return t
}

// sum returns the tokens in the cells.
func (s *stripes) sum() int64 {
	var t int64
	for i := range s.cells {
		t += max(s.cells[i].n.Load(), 0)
	}
	return t
}

// spread adds n tokens evenly over the cells and returns what it could not
// place evenly, for the entry's own counter. Called with the entry's mutex
// held, on a live entry.
func (s *stripes) spread(n int64) (rest int64) {
	share := n / int64(len(s.cells))
	if share == 0 {
		return n
	}
	for i := range s.cells {
		s.cells[i].n.Add(share)
	}
	return n - share*int64(len(s.cells))
}

// drain empties the cells and returns the tokens they held. Called with
// the entry's mutex held.
func (s *stripes) drain() int64 {
	var t int64
	for i := range s.cells {
		t += max(s.cells[i].n.Swap(0), 0)
	}
	return t
}

// kill marks every cell dead and returns the tokens they held. Called
// with the entry's mutex held.
func (s *stripes) kill() int64 {
	var t int64
	for i := range s.cells {
		t += max(s.cells[i].n.Swap(dead), 0)
	}
	return t
}
