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

// New returns a Counter with Cells() cells.
func New() *Counter {
	n, shift := Cells()
	return &Counter{cells: make([]cell, n), shift: shift}
}

// Cells returns how many cells a striped structure should have, two per
// usable CPU rounded up to a power of two and at most 64, and the shift
// that Pick needs to map a hash to one of them.
func Cells() (n int, shift uint) {
	c := min(max(2*runtime.GOMAXPROCS(0), 1), maxCells)
	b := bits.Len(uint(c - 1)) // c rounded up to 1<<b
	return 1 << b, uint(64 - b)
}

// Pick returns the index of the calling goroutine's cell among the Cells()
// cells whose shift is given. It does not allocate.
//
// It hashes the address of a variable on the calling goroutine's stack:
// goroutines have stacks of their own, and a new one usually reuses a
// stack freed on the same processor, so the choice is stable for a
// goroutine and tends to follow the processor. The address is only hashed,
// never dereferenced; if the stack moves, the goroutine just uses another
// cell, and every choice is correct.
func Pick(shift uint) int {
	var anchor byte
	p := uint64(uintptr(unsafe.Pointer(&anchor)))
	return int(((p >> 10) * 0x9e3779b97f4a7c15) >> shift)
}

// Add adds d to the count. It does not allocate.
func (c *Counter) Add(d int64) { c.cells[Pick(c.shift)].n.Add(d) }

// Load returns the sum of the cells. Concurrent adds may or may not be
// included.
func (c *Counter) Load() int64 {
	var s int64
	for i := range c.cells {
		s += c.cells[i].n.Load()
	}
	return s
}
