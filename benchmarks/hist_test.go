package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRangeHoldsItsValues(t *testing.T) {
	// Every value maps to a bucket whose range holds it; buckets tile the
	// line without gaps; a bucket is at most 1/32 of its values wide.
	values := []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1023, 1024, 1 << 20, 1<<20 + 1, 123456789, 1 << 40, math.MaxInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		values = append(values, r.Int64N(1<<uint(r.IntN(62)+1)))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= histLength {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, histLength)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("bucketOf(%d) = %d with range [%d, %d]", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1) > float64(lo)/32 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/32 of %d", i, lo, hi, lo)
		}
	}
	for i := 1; i < histLength; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
	if got := bucketOf(-5); got != 0 {
		t.Errorf("bucketOf(-5) = %d, want 0", got)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value exact", []time.Duration{42}, 0.99, 42},
		{"small values are exact: p50 of 1..10", seq(1, 10, 1), 0.5, 5},
		{"p90 of 1..10", seq(1, 10, 1), 0.9, 9},
		{"p100 is the max bucket, clamped to the max", seq(1, 10, 1), 1, 10},
		// 1000 ns lies in bucket [992, 1007]: midpoint 999.
		{"p50 of 1..2000 ns", seq(1, 2000, 1), 0.5, 999},
		// 99th of 1..100 µs in 1 µs steps is 99 µs, in bucket
		// [98304, 100351]: midpoint 99327.
		{"p99 of 1..100 µs", seq(time.Microsecond, 100*time.Microsecond, time.Microsecond), 0.99, 99327},
		{"p99 ignores one outlier in 100", append(repeat(100, 99), 5*time.Millisecond), 0.99, 100},
		// The 100th of 101 values is slow; its bucket's midpoint is above
		// the largest value, so the estimate is clamped to it.
		{"p99 of 99 fast and 2 slow is slow", append(repeat(100, 99), 5*time.Millisecond, 5*time.Millisecond), 0.99, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h hist
			for _, v := range tt.values {
				h.record(v)
			}
			got := h.quantile(tt.q)
			if got != tt.want {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestQuantileWithinStatedError(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var h hist
	vals := make([]int64, 100_000)
	for i := range vals {
		vals[i] = int64(math.Exp(r.Float64()*math.Log(1e9))) + 1 // log-uniform 1 ns .. 1 s
		h.record(time.Duration(vals[i]))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := int64(h.quantile(q))
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 1.0/32 {
			t.Errorf("q%v = %d, exact %d: relative error %.4f > 1/32", q, got, exact, rel)
		}
	}
}

func TestMerge(t *testing.T) {
	var a, b, all hist
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		all.record(d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	if a.count() != 1000 || a.max != int64(time.Millisecond) {
		t.Fatalf("merged count %d max %d, want 1000 and %d", a.count(), a.max, time.Millisecond)
	}
	if a.counts != all.counts {
		t.Fatal("merged buckets differ from recording everything in one histogram")
	}
	for _, q := range []float64{0.5, 0.99} {
		if a.quantile(q) != all.quantile(q) {
			t.Errorf("q%v: merged %v, single %v", q, a.quantile(q), all.quantile(q))
		}
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := new(hist)
	if n := testing.AllocsPerRun(1000, func() { h.record(12345) }); n != 0 {
		t.Fatalf("record allocates %v times", n)
	}
}

func seq(from, to, step time.Duration) []time.Duration {
	var s []time.Duration
	for v := from; v <= to; v += step {
		s = append(s, v)
	}
	return s
}

func repeat(v time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = v
	}
	return s
}
