package telemetry

import (
	"sync/atomic"

	istripe "github.com/distributedratelimiter/ratelimit/internal/stripe"
)

// A stripe is one copy of a Limiter's counters. Decisions on different
// cores mostly add to different stripes, so the counters' cache lines do
// not bounce between cores; a collection sums the stripes. It is padded
// to 256 bytes (at most 64 stripes: 16 KiB a Limiter) so that no two
// stripes share a cache line, nor a pair of lines that the hardware
// prefetches together.
type stripe struct {
	calls atomic.Int64           // checks begun
	n     [numSlots]atomic.Int64 // outcomes other than allowed and local, by slot
	_     [256 - (numSlots+1)*8]byte
}

// newStripes returns the stripes for this process and the shift that maps
// a hash to one (see internal/stripe).
func newStripes() ([]stripe, uint) {
	n, shift := istripe.Cells()
	return make([]stripe, n), shift
}

// stripe returns the calling goroutine's stripe (stripe.Pick).
func (l *Limiter) stripe() *stripe { return &l.stripes[istripe.Pick(l.shift)] }
