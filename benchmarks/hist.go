package main

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values below 2^subBits ns get a bucket each; above
// that, every power of two is split into 2^(subBits-1) equal buckets, so a
// bucket's width is at most 1/32 of its lower bound (HdrHistogram's
// scheme with about 1.5 significant digits).
const (
	subBits    = 6
	subCount   = 1 << subBits // 64 exact buckets for 0..63 ns
	halfCount  = subCount / 2 // 32 buckets per power of two above
	maxShift   = 63 - subBits // shifts 1..57 cover every positive int64
	histLength = subCount + maxShift*halfCount
)

// hist is a log-bucketed latency histogram. Recording is a few integer
// operations and one increment: no lock, no allocation. Each goroutine
// records into its own hist; merge them afterwards.
//
// The zero value is an empty histogram. A hist is not safe for concurrent
// use.
type hist struct {
	counts [histLength]uint64
	n      uint64
	max    int64
}

// bucketOf returns the index of the bucket holding v (ns, v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // v>>shift is in [32, 63]
	return subCount + (shift-1)*halfCount + int(v>>shift) - halfCount
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	j := i - subCount
	shift := j/halfCount + 1
	lo = int64(j%halfCount+halfCount) << shift
	return lo, lo + int64(1)<<shift - 1
}

// record adds one observation of d.
func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// merge adds o's observations to h.
func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// count returns the number of observations.
func (h *hist) count() uint64 { return h.n }

// quantile returns an estimate of the q-quantile (0 < q <= 1): the
// midpoint of the bucket holding the ceil(q×n)-th smallest observation,
// never above the largest observation. It returns 0 for an empty
// histogram.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// ceil(q×n), forgiving the rounding of q×n (0.99×100 must be 99).
	rank := uint64(max(math.Ceil(q*float64(h.n)-1e-9), 1))
	rank = min(rank, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			return time.Duration(min(lo+(hi-lo)/2, h.max))
		}
	}
	return time.Duration(h.max)
}
