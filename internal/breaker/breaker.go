// Package breaker is a circuit breaker for calls to Redis: when Redis keeps
// failing, callers stop sending it requests for a cool-down and take their
// failure policy at once, instead of each waiting for its own timeout.
//
// # States
//
//   - Closed: every call goes through. The breaker remembers the outcomes
//     of the last 32 calls and opens after DefaultConsecutiveFailures
//     failures in a row, or when at least DefaultFailureRatio of the last
//     DefaultWindow calls failed (once DefaultMinCalls have been made).
//   - Open: [Breaker.Allow] refuses every call, with no I/O and no lock,
//     until the cool-down (DefaultCoolDown, ±DefaultJitter) has passed.
//   - HalfOpen: one call, the probe, goes through; every other call is
//     refused while it is out. A successful probe closes the breaker; a
//     failed one opens it again, for twice the previous cool-down, up to
//     DefaultMaxCoolDown.
//
// # Use
//
// Every call that Allow lets through hands back its [Ticket] exactly once,
// with Done or Cancel:
//
//	tk, ok := b.Allow()
//	if !ok {
//		return failPolicy() // Redis is known to be failing: do not wait for it
//	}
//	v, err := callRedis(ctx)
//	if ctx.Err() == context.Canceled {
//		b.Cancel(tk) // the caller gave up: this says nothing about Redis
//	} else {
//		b.Done(tk, !breaker.IsFailure(err))
//	}
//
// Which errors count as failures is the caller's choice. Count what says
// Redis is unreachable or too slow: timeouts (including the limiter's own
// deadline), refused or reset connections, a full connection pool, and
// replies such as LOADING, BUSY, CLUSTERDOWN or MASTERDOWN. Do not count
// what says Redis answered: script errors, wrong-type replies, malformed
// replies, nor failures that never reached Redis, such as an invalid key.
// [IsFailure] draws that line.
//
// A ticket carries the generation of the state it was issued in, so an
// outcome that arrives after the breaker moved on (a slow call admitted
// before it opened) is ignored rather than counted against the new state.
package breaker

import (
	"context"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// State is the state of a [Breaker].
type State uint8

// The states of a Breaker; see the package documentation.
const (
	Closed State = iota
	Open
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// A Ticket is the permission [Breaker.Allow] gives one call. Hand it back
// exactly once, with [Breaker.Done] or [Breaker.Cancel]. A Ticket is a
// small value, safe to copy; the zero Ticket is accepted by Done and
// Cancel and does nothing.
type Ticket struct{ s uint64 }

// Probe reports whether t is the single call let through in the HalfOpen
// state, whose outcome closes or reopens the breaker.
func (t Ticket) Probe() bool { return t.s != 0 && State(t.s&stateMask) == HalfOpen }

// The state word: generation << genShift | probe bit | State. The
// generation grows by one on every change of state (and when a probe is
// cancelled), so a Ticket names the exact state it was issued in.
const (
	stateMask = 3
	probeBit  = 4
	genShift  = 3
)

// The window word, which counts the outcomes of one Closed generation:
// bits 0-31 hold the last 32 outcomes (bit i is set when the (i+1)-th most
// recent call failed), bits 32-37 the number of calls recorded (at most 32)
// and bits 38-63 the low 26 bits of the generation.
const (
	// MaxWindow is the largest window, and the largest number of
	// consecutive failures, a Breaker can count.
	MaxWindow = 32

	cntShift = 32
	cntMask  = 63
	tagShift = 38
	tagMask  = ^uint64(1<<tagShift - 1)
)

// Breaker is a circuit breaker; see the package documentation for its
// states.
//
// Allow costs one atomic load while the breaker is closed, and Done for a
// success one more once the window holds no failures; neither allocates.
// While open, Allow reads the clock and refuses without taking a lock.
//
// A Breaker is safe for concurrent use. Create it with [New]; the zero
// value is not usable. A nil *Breaker is always closed: Allow always
// admits, Done and Cancel do nothing, so an optional breaker needs no nil
// checks at its call sites.
type Breaker struct {
	// The four atomics are read without the lock and written only with
	// mu held, except that Done in the Closed state updates win by
	// compare-and-swap without it. cfg, epoch and rnd do not change after
	// New.
	state   atomic.Uint64 // the state word
	win     atomic.Uint64 // the window word
	until   atomic.Int64  // Open: when a probe may go, ns since epoch
	probeAt atomic.Int64  // HalfOpen with a probe out: when it left, ns since epoch

	cfg   config
	epoch time.Time
	rnd   func() float64 // in [0, 1); a seam for tests

	// failAt holds the times of the last MaxWindow failures recorded while
	// Closed, ns since epoch, at failSeq modulo MaxWindow: a ring written
	// without the lock, read by check to tell a stall from an outage.
	failAt  [MaxWindow]atomic.Int64
	failSeq atomic.Uint64

	mu   sync.Mutex    // serialises changes of state; protects cool
	cool time.Duration // cool-down of the current or last opening
}

// New returns a closed Breaker.
func New(opts ...Option) *Breaker {
	b := &Breaker{cfg: newConfig(opts), rnd: rand.Float64}
	b.epoch = b.cfg.clock.Now()
	b.cool = b.cfg.coolDown
	b.setState(0, 1<<genShift|uint64(Closed))
	return b
}

// State returns the current state.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	return State(b.state.Load() & stateMask)
}

// Allow reports whether a call may go to Redis now. When ok is false the
// caller must not make the call and must not call Done. When ok is true
// it must make the call and hand the ticket back with Done or Cancel.
//
// Closed: Allow admits. Open: it refuses until the cool-down has passed,
// then admits one caller as the probe and moves to HalfOpen. HalfOpen: it
// refuses while the probe is out; a probe not handed back within the probe
// timeout counts as failed.
func (b *Breaker) Allow() (t Ticket, ok bool) {
	if b == nil {
		return Ticket{}, true
	}
	s := b.state.Load()
	if State(s&stateMask) == Closed {
		return Ticket{s}, true
	}
	return b.allowSlow(s)
}

func (b *Breaker) allowSlow(s uint64) (Ticket, bool) {
	now := b.now()
	switch State(s & stateMask) {
	case Open:
		if now < b.until.Load() {
			return Ticket{}, false
		}
	case HalfOpen:
		if s&probeBit != 0 && now-b.probeAt.Load() < int64(b.cfg.probeTimeout) {
			return Ticket{}, false
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	s = b.state.Load()
	switch State(s & stateMask) {
	case Closed:
		return Ticket{s}, true
	case Open:
		if now < b.until.Load() {
			return Ticket{}, false
		}
		return b.sendProbe(s, now, "cool-down over"), true
	default: // HalfOpen
		if s&probeBit == 0 {
			return b.sendProbe(s, now, "probe cancelled"), true
		}
		if now-b.probeAt.Load() >= int64(b.cfg.probeTimeout) {
			b.reopen(s, now, "probe timed out")
		}
		return Ticket{}, false
	}
}

// Done hands back the ticket of a call that was made, with its outcome:
// success is false when the call failed in a way that says Redis is
// unavailable (see [IsFailure]). Outcomes of tickets issued before the
// breaker last changed state are ignored.
func (b *Breaker) Done(t Ticket, success bool) {
	if b == nil || t.s == 0 {
		return
	}
	if State(t.s&stateMask) == Closed {
		b.record(t, success)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != t.s {
		return // a probe that timed out or was cancelled
	}
	if success {
		b.cool = b.cfg.coolDown
		b.setState(t.s, b.next(t.s, Closed), slog.String("reason", "probe succeeded"))
		return
	}
	b.reopen(t.s, b.now(), "probe failed")
}

// Cancel hands back the ticket of a call whose outcome says nothing about
// Redis: it was not made after all, or the caller's own context was
// cancelled. A cancelled probe lets the next Allow send another.
func (b *Breaker) Cancel(t Ticket) {
	if b == nil || !t.Probe() {
		return // a closed ticket counts nothing until Done
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == t.s {
		b.setState(t.s, b.next(t.s, HalfOpen)) // no probe out; new generation
	}
}

// record counts the outcome of a call admitted while Closed and opens the
// breaker when a threshold is reached.
func (b *Breaker) record(t Ticket, success bool) {
	tag := (t.s >> genShift) << tagShift
	for {
		old := b.win.Load()
		if old&tagMask != tag {
			return // issued in an earlier generation
		}
		reg := uint32(old) << 1
		if !success {
			reg |= 1
		}
		n := min((old>>cntShift)&cntMask+1, MaxWindow)
		w := tag | n<<cntShift | uint64(reg)
		if w == old {
			return // a success when the window holds no failure
		}
		if b.win.CompareAndSwap(old, w) {
			if !success {
				seq := b.failSeq.Add(1)
				b.failAt[seq%MaxWindow].Store(b.now())
				b.check(t, reg, int(n), seq)
			}
			return
		}
	}
}

// check opens the breaker if the window reg of n calls, ending with the
// seq-th failure, crosses a threshold, and the failures that cross it span
// at least the minimum failure span: one stall, however many calls it
// fails at once, does not open it.
func (b *Breaker) check(t Ticket, reg uint32, n int, seq uint64) {
	c := &b.cfg
	consec := bits.TrailingZeros32(^reg)
	calls := min(n, c.window)
	fails := bits.OnesCount32(reg & c.winMask)
	var reason string
	var counted int // the failures that cross the threshold
	switch {
	case c.consecutive > 0 && consec >= c.consecutive:
		reason, counted = "consecutive failures", consec
	case c.ratio > 0 && calls >= c.minCalls && float64(fails) >= c.ratio*float64(calls):
		reason, counted = "failure ratio", fails
	default:
		return
	}
	if c.minSpan > 0 {
		first := b.failAt[(seq-uint64(min(counted, MaxWindow))+1)%MaxWindow].Load()
		if b.now()-first < int64(c.minSpan) {
			return // a burst of failures at one moment: a stall, not an outage
		}
	}
	if b.state.Load() != t.s {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != t.s {
		return
	}
	b.cool = c.coolDown
	b.open(t.s, b.now(), reason,
		slog.Int("consecutive_failures", consec),
		slog.Int("window_failures", fails),
		slog.Int("window_calls", calls))
}

// sendProbe moves from s to HalfOpen with a probe out and returns the
// probe's ticket. b.mu must be held.
func (b *Breaker) sendProbe(s uint64, now int64, reason string) Ticket {
	b.probeAt.Store(now)
	ns := b.next(s, HalfOpen) | probeBit
	b.setState(s, ns, slog.String("reason", reason))
	return Ticket{ns}
}

// reopen opens the breaker again after a failed probe, for twice the last
// cool-down, up to the maximum. b.mu must be held.
func (b *Breaker) reopen(s uint64, now int64, reason string) {
	b.cool = min(2*b.cool, b.cfg.maxCoolDown)
	b.open(s, now, reason)
}

// open moves from s to Open for a jittered b.cool. b.mu must be held.
func (b *Breaker) open(s uint64, now int64, reason string, attrs ...slog.Attr) {
	d := b.jittered(b.cool)
	b.until.Store(now + int64(d))
	attrs = append(attrs, slog.String("reason", reason), slog.Duration("cool_down", d))
	b.setState(s, b.next(s, Open), attrs...)
}

// jittered returns d varied uniformly by up to ±jitter·d.
func (b *Breaker) jittered(d time.Duration) time.Duration {
	j := b.cfg.jitter
	if j == 0 {
		return d
	}
	return d + time.Duration((2*b.rnd()-1)*j*float64(d))
}

// next returns the state word after s for state to: the next generation,
// no probe out.
func (b *Breaker) next(s uint64, to State) uint64 {
	return (s>>genShift+1)<<genShift | uint64(to)
}

// setState stores the state word ns, starts an empty window for its
// generation, and reports a change of State. b.mu must be held (New
// excepted).
func (b *Breaker) setState(s, ns uint64, attrs ...slog.Attr) {
	b.win.Store((ns >> genShift) << tagShift)
	b.state.Store(ns)
	from, to := State(s&stateMask), State(ns&stateMask)
	if s == 0 || from == to {
		return
	}
	level := slog.LevelDebug
	switch {
	case from == Closed:
		level = slog.LevelWarn
	case to == Closed:
		level = slog.LevelInfo
	}
	attrs = append(attrs, slog.String("breaker", b.cfg.name),
		slog.String("from", from.String()), slog.String("to", to.String()))
	b.cfg.logger.LogAttrs(context.Background(), level, "breaker: circuit "+to.String(), attrs...)
	if f := b.cfg.onChange; f != nil {
		f(from, to)
	}
}

// now returns the clock in ns since New.
func (b *Breaker) now() int64 { return int64(b.cfg.clock.Now().Sub(b.epoch)) }
