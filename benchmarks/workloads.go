package main

import (
	"fmt"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Limits of the two kinds of rows.
var (
	// unlimitedLimit is far above any demand this machine can make, so
	// nothing is denied and the throughput rows measure the cost of a
	// decision alone.
	unlimitedLimit = ratelimit.PerSecond(1 << 36).WithBurst(1 << 36)
	// accuracyLimit is the real limit of the accuracy rows: that of the
	// lease package's TestHotKeyRoundTrips, where leasing must cost at
	// most 10 Redis calls per 1,000 decisions at 0.8× and 10×.
	accuracyLimit = ratelimit.PerSecond(1000).WithBurst(1000)
)

// accuracyGoroutines is the number of goroutines per instance that send the
// paced demand of an accuracy row.
const accuracyGoroutines = 8

// A workload is one cell of the matrix, run once per implementation.
type workload struct {
	instances  int     // limiters sharing the Redis keys, each with its own client
	goroutines int     // goroutines per instance
	keys       int     // 1 is the hot key; more are chosen uniformly at random
	demand     float64 // 0: closed loop against unlimitedLimit; else paced, in multiples of accuracyLimit's rate
}

// accuracy reports whether w is an accuracy row (paced demand against a
// real limit) rather than a throughput row.
func (w workload) accuracy() bool { return w.demand > 0 }

// limit returns the limit w runs against.
func (w workload) limit() ratelimit.Limit {
	if w.accuracy() {
		return accuracyLimit
	}
	return unlimitedLimit
}

// keyLabel returns "hot" or the number of keys, such as "10,000".
func (w workload) keyLabel() string {
	if w.keys == 1 {
		return "hot"
	}
	return fmtInt(int64(w.keys))
}

// demandLabel returns "unlimited" or the demand as a multiple, such as
// "10×".
func (w workload) demandLabel() string {
	if !w.accuracy() {
		return "unlimited"
	}
	return fmt.Sprintf("%g×", w.demand)
}

// short is a compact label for chart axes: "1i 8g hot".
func (w workload) short() string {
	if w.accuracy() {
		return fmt.Sprintf("%di %s", w.instances, w.demandLabel())
	}
	k := "hot"
	switch {
	case w.keys >= 1000 && w.keys%1000 == 0:
		k = fmt.Sprintf("%dk", w.keys/1000)
	case w.keys > 1:
		k = fmt.Sprint(w.keys)
	}
	return fmt.Sprintf("%di %dg %s", w.instances, w.goroutines, k)
}

// throughputWorkloads is the matrix of throughput and latency rows:
// instances × goroutines per instance × keys, all unlimited.
func throughputWorkloads() []workload {
	var ws []workload
	for _, keys := range []int{1, 10_000} {
		for _, inst := range []int{1, 4} {
			for _, g := range []int{1, 8, 64} {
				ws = append(ws, workload{instances: inst, goroutines: g, keys: keys})
			}
		}
	}
	return ws
}

// accuracyWorkloads is the matrix of accuracy rows: the hot key at 0.8× and
// 10× the limit, from 1 and 4 instances.
func accuracyWorkloads() []workload {
	var ws []workload
	for _, inst := range []int{1, 4} {
		for _, d := range []float64{0.8, 10} {
			ws = append(ws, workload{instances: inst, goroutines: accuracyGoroutines, keys: 1, demand: d})
		}
	}
	return ws
}

// sweepKeys are the key counts between the hot key and 10,000 that a full
// run also measures for the lease alone (1 instance, 8 goroutines), to show
// where leasing stops paying as the demand per key falls.
var sweepKeys = []int{10, 100, 1000}

// sweepWorkloads is the lease-only key sweep; its table also takes the hot
// key and 10,000 keys rows of the main matrix.
func sweepWorkloads() []workload {
	ws := make([]workload, len(sweepKeys))
	for i, k := range sweepKeys {
		ws[i] = workload{instances: 1, goroutines: 8, keys: k}
	}
	return ws
}

// phases are the durations of one run's rows.
type phases struct {
	warmup   time.Duration // unmeasured closed loop before a throughput row
	measure  time.Duration // measured closed loop of a throughput row
	accuracy time.Duration // paced demand of an accuracy row
}

// phasesFor returns the durations of a full or -short run. A full run is
// 36 × 3.5 s + 12 × 5 s of load, about four minutes with set-up; a short
// run about 35 s.
func phasesFor(short bool) phases {
	if short {
		return phases{warmup: 100 * time.Millisecond, measure: 300 * time.Millisecond, accuracy: 1500 * time.Millisecond}
	}
	return phases{warmup: 500 * time.Millisecond, measure: 3 * time.Second, accuracy: 5 * time.Second}
}

// A job is one row to measure: an implementation on a workload.
type job struct {
	im impl
	w  workload
}

// plan returns the rows of a run in the order they are measured: the
// throughput matrix with the implementations side by side, then (full runs
// only) the lease's key sweep, then the accuracy matrix.
func plan(short bool) []job {
	var jobs []job
	for _, w := range throughputWorkloads() {
		for _, im := range impls {
			jobs = append(jobs, job{im, w})
		}
	}
	if !short {
		for _, w := range sweepWorkloads() {
			jobs = append(jobs, job{implLease, w})
		}
	}
	for _, w := range accuracyWorkloads() {
		for _, im := range impls {
			jobs = append(jobs, job{im, w})
		}
	}
	return jobs
}
