package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// viewLegend explains the live view before it is shown.
const viewLegend = `Live view: a line a second per mode. decisions/s is the checks of all instances together,
Redis calls/s the Lua scripts they ran (checks, lease refills, refunds, returns), and
"<tier> adm/den" the requests of that tier admitted/denied per second, such as 102/164;
a "!3" after it means 3 checks failed with an error (Redis too slow or down) in that second.
`

// view prints what one mode's run does, once a second: decisions and
// Redis calls per second, and per tier the requests admitted and denied
// per second. On a terminal it redraws one line in place; otherwise it
// writes a line per second. It ends with the run's averages.
type view struct {
	w      io.Writer
	tty    bool
	tiers  []string
	tally  *tally
	calls  *atomic.Int64
	start  time.Time
	widths []int // of the tier columns

	prev  [][3]int64 // admitted, denied, failed per tier at the last line
	prevC int64
	prevT time.Duration
}

func newView(w io.Writer, tiers []string, t *tally, calls *atomic.Int64) *view {
	v := &view{w: w, tty: isTerminal(w), tiers: tiers, tally: t, calls: calls, prev: make([][3]int64, len(tiers))}
	for _, name := range tiers {
		v.widths = append(v.widths, max(len(name)+len(" adm/den"), 11))
	}
	return v
}

// header writes the column names; the run starts now.
func (v *view) header() {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s %11s %13s", "time", "decisions/s", "Redis calls/s")
	for i, name := range v.tiers {
		fmt.Fprintf(&b, " %*s", v.widths[i], name+" adm/den")
	}
	b.WriteString("\n")
	io.WriteString(v.w, b.String())
	v.start = time.Now()
}

// run writes a line each second until done is closed, then the averages
// over the whole run.
func (v *view) run(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			v.line("avg", true)
			return
		case <-tick.C:
			v.line(fmt.Sprintf("%.0fs", time.Since(v.start).Seconds()), false)
		}
	}
}

// line writes the rates since the last line, or since the start when
// total is set.
func (v *view) line(label string, total bool) {
	now := time.Since(v.start)
	since, prev, prevC := v.prevT, v.prev, v.prevC
	if total {
		since, prev, prevC = 0, make([][3]int64, len(v.tiers)), 0
	}
	secs := (now - since).Seconds()
	if secs <= 0 {
		return
	}
	var decisions int64
	cols := make([]string, len(v.tiers))
	for i := range v.tiers {
		cur := [3]int64{v.tally.admitted[i].Load(), v.tally.denied[i].Load(), v.tally.failed[i].Load()}
		d := [3]int64{cur[0] - prev[i][0], cur[1] - prev[i][1], cur[2] - prev[i][2]}
		decisions += d[0] + d[1] + d[2]
		cols[i] = fmt.Sprintf("%.0f/%.0f", float64(d[0])/secs, float64(d[1])/secs)
		if d[2] > 0 {
			cols[i] += fmt.Sprintf(" !%d", d[2])
		}
		if !total {
			v.prev[i] = cur
		}
	}
	calls := v.calls.Load()
	var b strings.Builder
	if v.tty {
		b.WriteString("\r\x1b[K")
	}
	fmt.Fprintf(&b, "%6s %11.0f %13.0f", label, float64(decisions)/secs, float64(calls-prevC)/secs)
	for i, c := range cols {
		fmt.Fprintf(&b, " %*s", v.widths[i], c)
	}
	if !v.tty || total {
		b.WriteString("\n")
	}
	io.WriteString(v.w, b.String())
	if !total {
		v.prevC, v.prevT = calls, now
	}
}

// isTerminal reports whether w is a terminal that understands ANSI
// escapes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
