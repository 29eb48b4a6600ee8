package telemetry

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// A stripe is one copy of a Limiter's counters. Decisions on different
// cores mostly add to different stripes, so the counters' cache lines do
// not bounce between cores; a collection sums the stripes. It is padded
// to 256 bytes so that no two stripes share a cache line, nor a pair of
// lines that the hardware prefetches together.
type stripe struct {
	calls atomic.Int64           // checks begun
	n     [numSlots]atomic.Int64 // outcomes other than allowed and local, by slot
	_     [256 - (numSlots+1)*8]byte
}

// maxStripes bounds the memory of one Limiter: 64 × 256 bytes.
const maxStripes = 64

// newStripes returns the stripes for this process, two per usable CPU
// rounded up to a power of two, and the shift that maps a hash to one.
func newStripes() ([]stripe, uint) {
	n := min(max(2*runtime.GOMAXPROCS(0), 1), maxStripes)
	b := bits.Len(uint(n - 1)) // n rounded up to 1<<b
	return make([]stripe, 1<<b), uint(64 - b)
}

// stripe returns the calling goroutine's stripe. It hashes the address of
// a variable on the goroutine's stack: each goroutine has a stack of its
// own, and a new goroutine usually gets a stack freed earlier on the same
// processor, so the choice is stable for a goroutine and tends to follow
// the processor. The address is only hashed, never dereferenced. A stack
// that grows moves, and its goroutine then uses another stripe; every
// choice is correct, some are merely faster.
func (l *Limiter) stripe() *stripe {
	var anchor byte
	p := uint64(uintptr(unsafe.Pointer(&anchor)))
	return &l.stripes[((p>>10)*0x9e3779b97f4a7c15)>>l.shift]
}
