// Package stripe is a counter that many goroutines add to without sharing
// one cache line: each adds to one of several padded cells, chosen from
// where its stack lives, and a read sums the cells.
package stripe

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// maxCells bounds the memory of one Counter: 64 × 128 bytes.
const maxCells = 64

// cell is one copy of the count, alone on its cache lines (and on the
// adjacent line that x86 prefetchers fetch in pairs).
type cell struct {
	n atomic.Int64
	_ [120]byte
}

// Counter is a striped counter. Add costs one hash and one atomic add on a
// cell that other cores rarely touch; Load sums every cell.
//
// The zero value is not usable: create it with New. A Counter is safe for
// concurrent use.
type Counter struct {
	cells []cell
	shift uint
}

// New returns a Counter with two cells per usable CPU, rounded up to a
// power of two, at most 64.
func New() *Counter {
	n := min(max(2*runtime.GOMAXPROCS(0), 1), maxCells)
	b := bits.Len(uint(n - 1))
	return &Counter{cells: make([]cell, 1<<b), shift: uint(64 - b)}
}

// Add adds d to the count. It does not allocate.
//
// The cell is chosen by hashing the address of a variable on the calling
// goroutine's stack: goroutines have stacks of their own, and a new one
// usually reuses a stack freed on the same processor, so the choice is
// stable for a goroutine and tends to follow the processor. The address is
// only hashed, never dereferenced; if the stack moves, the goroutine just
// uses another cell.
func (c *Counter) Add(d int64) {
	var anchor byte
	p := uint64(uintptr(unsafe.Pointer(&anchor)))
	c.cells[((p>>10)*0x9e3779b97f4a7c15)>>c.shift].n.Add(d)
}

// Load returns the sum of the cells. Concurrent adds may or may not be
// included.
func (c *Counter) Load() int64 {
	var s int64
	for i := range c.cells {
		s += c.cells[i].n.Load()
	}
	return s
}
