package lease

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributedratelimiter/ratelimit/internal/fallback"
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

// entry is the local state of one key.
//
// The protocol between its fields:
//   - tokens, and the cells of striped once a key is hot, are the only
//     fields the hit path writes (a compare-and-swap that never goes below
//     zero); it reads key, striped, low and remote. Only at its low
//     watermark does it read more: refilling (which it CASes), every cell
//     (held), and, when only its own cell is low, it TryLocks mu to
//     rebalance. Only refills (add), refunds (add), the janitor (expire),
//     eviction (kill) and the moves between the cells and tokens
//     (rebalance, gather) raise or lower them otherwise, each with mu
//     held, so that their sum plus what the grants say was spent equals
//     granted - removed whenever mu is free (a rebalance moves tokens
//     through zero: a reader without mu may see fewer for a moment, never
//     more, and the slow path takes mu before it concludes there are
//     none).
//   - refilling is raised by whoever starts a refill (the hit path at the
//     low watermark, the slow path) and lowered only by that refill when it
//     ends.
//   - x holds the state that only some keys ever need (see extra): nil
//     until one of them is first needed, then set once, by a
//     compare-and-swap (more), and never changed. Every read of that state
//     is one load of x, and a nil x reads as zero values; the hit path
//     reads none of it.
//   - the fields under mu are the bookkeeping of refills, refunds, expiry
//     and eviction; whoever reads or writes them holds mu.
type entry struct {
	tokens    atomic.Int64            // leased tokens not yet served; dead once evicted
	striped   atomic.Pointer[stripes] // a hot key's tokens beyond tokens; nil until hot
	remote    atomic.Int64            // tokens Redis had left at the last grant; -1 before
	x         atomic.Pointer[extra]   // state few keys need; nil until one does, then fixed
	refilling atomic.Bool             // a refill is in flight
	low       atomic.Int32            // a hit that leaves this many or fewer starts a refill

	key string // client key; its Redis key is made when needed (Limiter.rkey)

	mu         sync.Mutex // guards the fields below, and those of x that say so
	grants     []grant    // grants not yet fully spent, oldest first
	granted    int64      // tokens ever added to tokens (grants and refunds)
	removed    int64      // tokens ever taken back out by expiry or eviction
	rate       float64    // demand estimate, tokens/s
	born       int64      // ns, when the entry was made: the age of rate
	lastRefill int64      // ns, start of the last refill
	lastGrant  int64      // ns, end of the last refill that granted tokens; -1 before
	lastDemand int64      // demand at the last refill
	activeAt   int64      // ns, when the last janitor pass that saw activity ran
	share      float32    // tokens/s Redis granted this instance, EWMA; 0 before (only FailLocal reads it)
	seen       uint32     // demand at that pass, its low 32 bits: enough to tell that it changed
}

// extra is the state only some keys ever need: that of a key Redis
// limited (a remembered denial, tokens granted ahead), could not serve
// (degraded, the failure policy's bucket), or that was reset or refunded.
// An entry gets it from more the first time it enters one of those
// states, and keeps it until the entry is dropped: fields written without
// mu (unleased, deniedUntil, degraded, probeAt) would lose a write to a
// copy being replaced, and unleased counts into demand, which must not
// fall. The atomic fields are read without mu by the slow path, refills
// and Stats; the others are guarded by the entry's mu.
//
// The protocol between its fields:
//   - unleased counts the decisions that spent no leased token: local
//     denials and the failure policy's decisions. It is part of demand.
//   - deniedUntil is a denial remembered from Redis (or from the schedule
//     of tokens granted ahead): callers that find no tokens before then
//     are denied without asking. Set by refills and the slow path (takeDue),
//     cleared by a refill that grants, by Reset, and by whatever gives
//     Redis tokens back (the janitor, a refund).
//   - degraded is raised when Redis could not answer for this key (a refill
//     failed, or a caller gave up waiting for one) and lowered by the next
//     refill that succeeds. While it is up, callers that find no tokens are
//     decided by the failure policy at once, and a refill is retried no
//     more often than every fallbackHold (probeAt).
//   - fb, under mu, is the FailLocal bucket: made empty when the policy
//     first decides, it owes Redis what it admitted; refills charge the
//     debt, and it is dropped once Redis answers and nothing is owed. owes
//     mirrors fb != nil for readers without mu.
//   - sched counts tokens Redis granted ahead (not yet earned when
//     granted), kept by grant in ahead: each grant's tokens fall due one
//     every interval from its first, and release moves the due ones into
//     tokens, as a grant at that moment. Only refills add to them, only
//     release, kill and Reset take from them, all with mu held; the hit
//     path never sees them.
//   - resets, under mu, counts this instance's Resets of the key: a refill
//     reads it when it begins and drops its grant (tokens of the old
//     bucket) if it changed by the time the reply lands.
type extra struct {
	deniedUntil atomic.Int64 // ns on the limiter's clock: remembered Redis denial
	degraded    atomic.Bool  // Redis is slow or failing for this key
	owes        atomic.Bool  // fb != nil: a refill must charge what it admitted; written with mu held
	probeAt     atomic.Int64 // ns: a degraded key tries Redis again from then on
	sched       atomic.Int64 // tokens granted ahead, not yet due; written with mu held
	dueAt       atomic.Int64 // ns: the next of them falls due then, as takeDue last found; 0 unknown; written with mu held
	refillAfter atomic.Int64 // ns: no background refill before (a partial grant ahead)

	// unleased counts the decisions that spent no leased token, for
	// demand: every denial of a key over its limit adds to it, on every
	// core, so it sits on a cache line apart from the fields above, which
	// each such denial reads.
	_        [56]byte
	unleased atomic.Int64

	// Guarded by entry.mu:
	fb      *fallback.Bucket // FailLocal's bucket while Redis is degraded or owed
	ahead   []segment        // tokens granted ahead and not yet due, by grant, in order
	resets  int64            // Resets of the key by this instance: a refill that began before one drops its grant
	refunds int64            // tokens ever refunded, into tokens or to Redis
}

// more returns e's extra state, made (empty) if e has none yet. Safe
// without mu: concurrent callers agree on one.
func (e *entry) more() *extra {
	if x := e.x.Load(); x != nil {
		return x
	}
	if x := new(extra); e.x.CompareAndSwap(nil, x) {
		return x
	}
	return e.x.Load()
}

// Readers of the extra state, for any caller (those of the fields under
// mu hold it): a key without extra state reads zeros.

// unleased returns the decisions of e that spent no leased token.
func (e *entry) unleased() int64 {
	var t int64
	if x := e.x.Load(); x != nil {
		t = x.unleased.Load()
	}
	if st := e.striped.Load(); st != nil {
		t += st.unleased() // stripes, once made, stay: the count never falls
	}
	return t
}

// countUnleased counts a decision of e that spent no leased token: a
// local denial or a decision of the failure policy. A hot key counts it
// in the caller's stripe, apart from the other cores' callers.
func (e *entry) countUnleased() {
	if st := e.striped.Load(); st != nil {
		st.mine().unleased.Add(1)
		return
	}
	e.more().unleased.Add(1)
}

// deniedUntil returns when e's remembered Redis denial ends (ns), 0 for
// none.
func (e *entry) deniedUntil() int64 {
	if x := e.x.Load(); x != nil {
		return x.deniedUntil.Load()
	}
	return 0
}

// forgetDenial drops e's remembered Redis denial, if any.
func (e *entry) forgetDenial() {
	if x := e.x.Load(); x != nil {
		x.deniedUntil.Store(0)
	}
}

// degraded reports whether Redis is slow or failing for e.
func (e *entry) degraded() bool {
	x := e.x.Load()
	return x != nil && x.degraded.Load()
}

// owes reports whether e's fallback admitted requests a refill must still
// charge to Redis.
func (e *entry) owes() bool {
	x := e.x.Load()
	return x != nil && x.owes.Load()
}

// scheduled returns the tokens granted ahead to e, not yet due.
func (e *entry) scheduled() int64 {
	if x := e.x.Load(); x != nil {
		return x.sched.Load()
	}
	return 0
}

// dueAt returns when the next token granted ahead falls due (ns), as the
// last release under takeDue found it; 0 when unknown.
func (e *entry) dueAt() int64 {
	if x := e.x.Load(); x != nil {
		return x.dueAt.Load()
	}
	return 0
}

// refillAfter returns the time (ns) before which e starts no background
// refill, 0 for none.
func (e *entry) refillAfter() int64 {
	if x := e.x.Load(); x != nil {
		return x.refillAfter.Load()
	}
	return 0
}

// fallbackBucket returns FailLocal's bucket for e, nil for none. Called
// with mu held.
func (e *entry) fallbackBucket() *fallback.Bucket {
	if x := e.x.Load(); x != nil {
		return x.fb
	}
	return nil
}

// resets returns this instance's Resets of e. Called with mu held.
func (e *entry) resets() int64 {
	if x := e.x.Load(); x != nil {
		return x.resets
	}
	return 0
}

// refunded returns the tokens ever refunded for e. Called with mu held.
func (e *entry) refunded() int64 {
	if x := e.x.Load(); x != nil {
		return x.refunds
	}
	return 0
}

// segment is one grant ahead: n tokens not yet due, the next at at (ns),
// one more every interval after it.
type segment struct{ at, n int64 }

func newEntry(key string, now int64) *entry {
	e := &entry{key: key, lastRefill: now, born: now, lastGrant: -1, activeAt: now}
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

// add puts n tokens into the counter as a grant made at now, spreading
// them over the stripes of a hot key (striping it once a single grant
// reaches stripeMin), and reports false if the entry is dead, in which
// case the caller must give them back. Called with mu held: kill, the only
// writer of dead, holds it too, and the hit path only takes, so plain adds
// are safe.
func (e *entry) add(n, now int64) bool {
	if e.tokens.Load() < 0 {
		return false
	}
	e.trim()
	home := n
	st := e.striped.Load()
	if st == nil && n >= stripeMin {
		st = newStripes()
		e.striped.Store(st)
	}
	if st != nil {
		home = st.spread(n)
	}
	e.tokens.Add(home)
	e.granted += n
	e.grants = append(e.grants, grant{at: now, end: e.granted})
	return true
}

// trim drops the grants callers have spent in full, so that a key refilled
// often between janitor passes (a quiet key leases one token per request)
// keeps only the grants it still holds tokens of, reusing their backing
// array. The outflow only grows, so a grant spent stays spent, and expire
// would skip it anyway; an outflow read while callers take is low, which
// keeps a grant a little longer, never drops one too soon. Called with mu
// held.
func (e *entry) trim() {
	outflow := e.granted - e.held()
	spent := 0
	for spent < len(e.grants) && e.grants[spent].end <= outflow {
		spent++
	}
	if spent == len(e.grants) {
		e.grants = e.grants[:0] // keep the array for the grant being added
		return
	}
	e.grants = e.grants[spent:]
}

// gather moves the tokens of a hot key's stripes into its own counter, so
// that a request for more than one stripe holds can be served, and reports
// whether it moved any. Called with mu held.
func (e *entry) gather() bool {
	st := e.striped.Load()
	if st == nil || e.tokens.Load() < 0 {
		return false
	}
	moved := st.drain()
	e.tokens.Add(moved)
	return moved > 0
}

// rebalance spreads a hot key's tokens, its stripes' and its own
// counter's, evenly over its stripes again (what does not divide evenly
// stays in the counter), so that once one caller's stripe ran dry the
// callers on other cores keep taking from stripes of their own rather
// than all from the counter. Called with mu held.
func (e *entry) rebalance() {
	st := e.striped.Load()
	if st == nil {
		return
	}
	for {
		cur := e.tokens.Load()
		if cur < 0 {
			return // dead
		}
		if e.tokens.CompareAndSwap(cur, 0) {
			e.tokens.Add(st.spread(cur + st.drain()))
			return
		}
	}
}

// served returns how many tokens of this entry callers have spent, a
// refunded token counting each time it is spent. Called with mu held.
func (e *entry) served() int64 {
	return e.granted - e.removed - e.held()
}

// refundable returns how many tokens admitted requests spent from leases
// and did not refund yet: what a refund may put back. Called with mu held.
func (e *entry) refundable() int64 { return e.served() - e.refunded() }

// demand returns the decisions this key has seen: tokens served, local
// denials and decisions of the failure policy. It only grows, except that
// a refund lowers served, which is activity too. Called with mu held.
func (e *entry) demand() int64 {
	return e.served() + e.unleased()
}

// held returns the leased tokens in the counter and its stripes, not yet
// spent.
func (e *entry) held() int64 {
	h := max(e.tokens.Load(), 0)
	if st := e.striped.Load(); st != nil {
		h += st.sum()
	}
	return h
}

// holding returns every leased token not yet spent: those in the counter
// and those granted ahead, not yet due.
func (e *entry) holding() int64 { return e.held() + e.scheduled() }

// schedule adds n tokens granted ahead, the first due at first (ns), one
// more every interval after it. Called with mu held.
func (e *entry) schedule(n, first int64) {
	x := e.more()
	x.ahead = append(x.ahead, segment{at: first, n: n})
	x.sched.Add(n)
	x.dueAt.Store(0) // these may fall due sooner
}

// release moves the tokens granted ahead that are due at now into the
// counter, and returns when the next one is due (0 when none is left).
// Called with mu held.
func (e *entry) release(now int64, interval float64) (next int64) {
	x := e.x.Load()
	if x == nil {
		return 0 // nothing was ever granted ahead
	}
	var due int64
	for i := range x.ahead {
		s := &x.ahead[i]
		if now < s.at {
			continue
		}
		k := min(s.n, 1+int64(float64(now-s.at)/interval))
		s.n -= k
		s.at += int64(float64(k) * interval)
		due += k
	}
	if due > 0 && e.add(due, now) {
		x.sched.Add(-due)
	}
	x.ahead = slices.DeleteFunc(x.ahead, func(s segment) bool { return s.n == 0 })
	for _, s := range x.ahead {
		if next == 0 || s.at < next {
			next = s.at
		}
	}
	if len(x.ahead) == 0 {
		x.ahead = nil
	}
	return next
}

// expire takes back the unspent tokens of grants made at or before cutoff
// and returns how many it took. Called with mu held.
func (e *entry) expire(cutoff int64) int64 {
	if e.tokens.Load() < 0 {
		return 0
	}
	e.gather() // one counter to take back from
	var took int64
	for len(e.grants) > 0 {
		cur := e.tokens.Load()
		outflow := e.granted - e.held()
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
	e.rebalance() // back over the stripes: callers on other cores would all take from tokens
	return took
}

// kill marks the entry dead and returns the tokens it held. Called with mu
// held.
func (e *entry) kill() int64 {
	left := e.tokens.Swap(dead)
	if left < 0 {
		return 0
	}
	if st := e.striped.Load(); st != nil {
		left += st.kill()
	}
	e.removed += left
	e.grants = nil
	var ahead int64
	if x := e.x.Load(); x != nil {
		ahead = x.sched.Swap(0) // granted, never served: back to Redis too
		x.ahead = nil
	}
	return left + ahead
}

// idle reports whether the entry has seen no request since idleFor before
// now, updating its activity record. A key whose fallback state is still
// needed (Redis degraded, or admissions still owed to it) is never idle.
// The record keeps the low 32 bits of demand: a change goes unseen only if
// it is an exact multiple of 2^32 decisions of the key between two passes.
// Called with mu held.
func (e *entry) idle(now int64, idleFor time.Duration) bool {
	if d := uint32(e.demand()); d != e.seen {
		e.seen, e.activeAt = d, now
		return false
	}
	if e.degraded() || e.fallbackBucket() != nil || e.refilling.Load() {
		return false
	}
	return now-e.activeAt >= int64(idleFor)
}

// learnShare folds a grant of n tokens at now into the estimate of this
// instance's share of the limit, in tokens/s: an average over time of the
// tokens Redis granted (time constant shareTau), capped at the limit's
// rate. Called with mu held.
func (e *entry) learnShare(n, now int64, limitRate float64) {
	if e.lastGrant >= 0 {
		if dt := float64(now-e.lastGrant) / 1e9; dt > 0 {
			alpha := 1 - math.Exp(-dt/shareTau.Seconds())
			e.share = float32(min(alpha*float64(n)/dt+(1-alpha)*float64(e.share), limitRate))
		}
	}
	e.lastGrant = now
}

// shareTau is the time constant of the share estimate: long enough to
// smooth the lumps of single leases, short enough to follow a shift of
// demand between instances within a few seconds.
const shareTau = time.Second
