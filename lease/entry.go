package lease

import (
	"sync"

	"github.com/distributedratelimiter/ratelimit/algorithms"
	"sync/atomic"
	"time"
)

// dead marks an evicted entry's token counter: far below zero, so a take
// always fails and a late refill can tell.
const dead = -1 << 62

// grant records one lease from Redis, for expiry: tokens are fungible, so
// they are accounted first in, first out against the cumulative outflow.
type grant struct {
	at  int64 // when granted, ns on the limiter's clock
	end int64 // entry.granted after this grant
}

// entry is the local state of one key. The hit path touches only tokens,
// remote and low; the rest belongs to refills and the janitor.
type entry struct {
	tokens      atomic.Int64 // leased tokens not yet served; dead once evicted
	remote      atomic.Int64 // tokens Redis had left at the last grant; -1 before
	deniedUntil atomic.Int64 // ns on the limiter's clock: remembered denial
	denials     atomic.Int64 // local denials, for the demand estimate
	waiting     atomic.Int64 // tokens wanted by callers waiting for a refill
	reserved    atomic.Int64 // granted tokens set aside for those callers
	refilling   atomic.Bool  // a refill is in flight
	low         atomic.Int32 // a hit that leaves this many or fewer starts a refill
	failedUntil atomic.Int64 // ns: the failure policy decides until then

	key string // client key; its Redis key is made when needed (Limiter.rkey)

	mu         sync.Mutex // guards the fields below
	grants     []grant    // grants not yet fully spent, oldest first
	granted    int64      // tokens ever added to tokens
	removed    int64      // tokens ever taken back out by expiry or eviction
	rate       float64    // demand estimate, tokens/s
	lastRefill int64      // ns, start of the last refill
	lastDemand int64      // served + denials at the last refill
	seen       int64      // served + denials at the last janitor pass that saw activity
	activeAt   int64      // ns, when that pass ran

	fallback *algorithms.TokenBucketState // local bucket while Redis is down
}

func newEntry(key string, now int64) *entry {
	e := &entry{key: key, lastRefill: now, activeAt: now}
	e.remote.Store(-1)
	return e
}

// take spends n tokens if the counter holds them, and returns what it
// left. It never takes the counter below zero and never locks.
func (e *entry) take(n int64) (left int64, ok bool) {
	for {
		cur := e.tokens.Load()
		if cur < n {
			return cur, false
		}
		if e.tokens.CompareAndSwap(cur, cur-n) {
			return cur - n, true
		}
	}
}

// claim takes n tokens set aside for waiting callers, if there are.
func (e *entry) claim(n int64) bool {
	for {
		cur := e.reserved.Load()
		if cur < n {
			return false
		}
		if e.reserved.CompareAndSwap(cur, cur-n) {
			return true
		}
	}
}

// unreserve moves tokens set aside for waiters that did not claim them
// back into the counter; reserved tokens are counted as held in tokens'
// place. Called with mu held.
func (e *entry) unreserve() {
	if r := e.reserved.Swap(0); r > 0 {
		for {
			cur := e.tokens.Load()
			if cur < 0 {
				e.removed += r // dead: kill already counted the rest
				return
			}
			if e.tokens.CompareAndSwap(cur, cur+r) {
				return
			}
		}
	}
}

// add puts n granted tokens into the counter, first setting aside up to
// reserve of them for waiting callers, and reports false if the entry is
// dead, in which case the caller must give them back. Called with mu held.
func (e *entry) add(n, reserve, now int64) bool {
	reserve = min(reserve, n)
	for {
		cur := e.tokens.Load()
		if cur < 0 {
			return false
		}
		if e.tokens.CompareAndSwap(cur, cur+n-reserve) {
			e.reserved.Add(reserve)
			e.granted += n
			e.grants = append(e.grants, grant{at: now, end: e.granted})
			return true
		}
	}
}

// served returns how many tokens of this entry callers have spent. Called
// with mu held.
func (e *entry) served() int64 {
	return e.granted - e.removed - e.held()
}

// held returns the leased tokens not yet spent, reserved ones included.
func (e *entry) held() int64 {
	return max(e.tokens.Load(), 0) + e.reserved.Load()
}

// expire takes back the unspent tokens of grants made at or before cutoff
// and returns how many it took. Called with mu held.
func (e *entry) expire(cutoff int64) int64 {
	e.unreserve()
	var took int64
	for len(e.grants) > 0 {
		cur := e.tokens.Load()
		if cur < 0 {
			return took
		}
		outflow := e.granted - cur
		g := e.grants[0]
		if g.end <= outflow {
			e.grants = e.grants[1:] // fully spent
			continue
		}
		if g.at > cutoff {
			break
		}
		unspent := min(g.end-outflow, cur)
		if !e.tokens.CompareAndSwap(cur, cur-unspent) {
			continue // a caller spent a token meanwhile: recount
		}
		e.removed += unspent
		took += unspent
		e.grants = e.grants[1:]
	}
	if len(e.grants) == 0 {
		e.grants = nil // let a burst's backing array go
	}
	return took
}

// kill marks the entry dead and returns the tokens it held. Called with mu
// held.
func (e *entry) kill() int64 {
	e.unreserve()
	left := e.tokens.Swap(dead)
	if left < 0 {
		return 0
	}
	e.removed += left
	e.grants = nil
	return left
}

// idle reports whether the entry has seen no request since idleFor before
// now, updating its activity record. Called with mu held.
func (e *entry) idle(now int64, idleFor time.Duration) bool {
	// served and denials only grow (a refund lowers served, and is
	// activity too), so their sum changes exactly when there was activity.
	if seen := e.served() + e.denials.Load(); seen != e.seen {
		e.seen, e.activeAt = seen, now
		return false
	}
	return now-e.activeAt >= int64(idleFor) && !e.refilling.Load()
}
