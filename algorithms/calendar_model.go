package algorithms

import (
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// CalendarWindowState is what a [CalendarWindow] key holds.
//
// The zero value is a missing key, which has spent nothing, as is any state
// of a window that does not hold now.
type CalendarWindowState struct {
	// Start and End are the window's bounds, [Start, End), in µs since
	// the Unix epoch.
	Start, End int64
	// Count is the number of tokens spent in the window.
	Count int64
}

// holds reports whether s is a window that holds nowUS.
func (s CalendarWindowState) holds(nowUS int64) bool { return s.Start <= nowUS && nowUS < s.End }

// CalendarWindowModel is the reference model of [CalendarWindow]
// (lua/calendar_window*.lua): the windows of Calendar, each admitting at
// most Burst tokens. A denied request may retry when the window ends.
//
// The scripts take the windows from their caller, as a table of three
// consecutive windows around the caller's clock; the model's exported
// methods compute that table from nowUS, as a Limiter whose clock agrees
// with the server's does, so they never meet a table that misses now.
//
// Its methods are pure functions of their arguments. The zero value has an
// invalid Limit and Calendar: set both; Calendar.Validate(Limit) must
// pass. A CalendarWindowModel is a plain value, safe for concurrent use.
type CalendarWindowModel struct {
	// Limit is the limit the model enforces.
	Limit ratelimit.Limit
	// Calendar says what the windows are.
	Calendar CalendarWindow
}

// table returns the boundary table the Limiter passes at nowUS.
func (m CalendarWindowModel) table(nowUS int64) [4]int64 {
	return m.Calendar.bounds(time.UnixMicro(nowUS))
}

// window returns the window of nowUS and the tokens s has spent in it, as
// the scripts find them: the key's own window if it holds nowUS, else the
// window of the table b that does; ok is false when none does.
func (m CalendarWindowModel) window(s CalendarWindowState, nowUS int64, b [4]int64) (w CalendarWindowState, ok bool) {
	if s.holds(nowUS) {
		return s, true
	}
	for i := range 3 {
		if w := (CalendarWindowState{Start: b[i], End: b[i+1]}); w.holds(nowUS) {
			return w, true
		}
	}
	return CalendarWindowState{}, false
}

// Decide spends n tokens of the window of s at nowUS if it has room for
// them, as [CalendarWindow]'s Check does, and returns the new state and the
// decision. A denial returns s unchanged. n must be between 1 and the
// burst.
func (m CalendarWindowModel) Decide(s CalendarWindowState, nowUS int64, n int) (CalendarWindowState, ratelimit.Decision) {
	s, r := m.check(s, nowUS, n, m.table(nowUS))
	return s, r.decision(m.Limit)
}

// check mirrors calendar_window.lua, with its boundary table b.
func (m CalendarWindowModel) check(s CalendarWindowState, nowUS int64, n int, b [4]int64) (CalendarWindowState, reply) {
	burst := int64(m.Limit.Burst)
	w, ok := m.window(s, nowUS, b)
	if !ok {
		return s, reply{2, nowUS, 0, 0}
	}
	reset := w.End - nowUS
	if w.Count+int64(n) > burst {
		return s, reply{0, max(burst-w.Count, 0), reset, reset}
	}
	w.Count += int64(n)
	return w, reply{1, burst - w.Count, 0, reset}
}

// Refund lowers the count of the window of s at nowUS by n, but not below
// 0, as CalendarWindow's Refund does, and returns the new state and the
// tokens the window has left. n must be positive.
func (m CalendarWindowModel) Refund(s CalendarWindowState, nowUS int64, n int) (CalendarWindowState, int) {
	s, r := m.refund(s, nowUS, n)
	return s, int(r[0])
}

func (m CalendarWindowModel) refund(s CalendarWindowState, nowUS int64, n int) (CalendarWindowState, reply) {
	burst := int64(m.Limit.Burst)
	if !s.holds(nowUS) {
		s = CalendarWindowState{}
	}
	s.Count = max(s.Count-int64(n), 0)
	remaining := max(burst-s.Count, 0)
	if s.Count == 0 {
		return CalendarWindowState{}, reply{remaining, 0, 0, 0}
	}
	return s, reply{remaining, 0, 0, s.End - nowUS}
}
