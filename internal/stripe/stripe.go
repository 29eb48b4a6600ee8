// Package stripe picks, for the calling goroutine, one of several padded
// cells of a striped structure, so that goroutines on different cores
// update different cache lines: the choice follows where the goroutine's
// stack lives.
package stripe

import (
	"math/bits"
	"runtime"
	"unsafe"
)

// maxCells bounds the cells of one striped structure.
const maxCells = 64

// Cells returns how many cells a striped structure should have, four per
// usable CPU rounded up to a power of two and at most 64, and the shift
// that Pick needs to map a hash to one of them. Goroutines pick cells by
// hash, so two on different CPUs share a cell with probability 1/n: four
// per CPU make that rare.
func Cells() (n int, shift uint) {
	c := min(max(4*runtime.GOMAXPROCS(0), 1), maxCells)
	b := bits.Len(uint(c - 1)) // c rounded up to 1<<b
	return 1 << b, uint(64 - b)
}

// Pick returns the index of the calling goroutine's cell among the Cells()
// cells whose shift is given, under salt. It does not allocate.
//
// It hashes the address of a variable on the calling goroutine's stack:
// goroutines have stacks of their own, and a new one usually reuses a
// stack freed on the same processor, so the choice is stable for a
// goroutine and tends to follow the processor. The address is only hashed,
// never dereferenced; if the stack moves, the goroutine just uses another
// cell, and every choice is correct.
//
// Two goroutines share a cell with probability 1/n, and keep sharing it
// for as long as they live. A structure that can tell when they meet (a
// compare-and-swap that lost) changes its salt, which deals every
// goroutine's cell anew; one that cannot passes a constant.
//
// Stacks of one size sit side by side, so two goroutines' addresses often
// differ by a power of two: the hash mixes every bit into the top ones
// (murmur3's finalizer), where one multiply would map such neighbours to
// the same cell for some sizes.
func Pick(shift uint, salt uint64) int {
	var anchor byte
	x := uint64(uintptr(unsafe.Pointer(&anchor))) >> 10
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return int(x * (salt<<1 | 1) >> shift)
}
