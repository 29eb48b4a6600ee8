package breaker_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit/internal/breaker"
	"github.com/distributedratelimiter/ratelimit/internal/limitertest"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *limitertest.Clock { return limitertest.NewClock(t0) }

type op int

const (
	allow  op = iota // Allow admits a call that is not a probe
	probe            // Allow admits the probe
	deny             // Allow refuses
	ok               // Done(ticket, true)
	fail             // Done(ticket, false)
	cancel           // Cancel(ticket)
)

var opNames = [...]string{"allow", "probe", "deny", "ok", "fail", "cancel"}

// step is one call at instant t0+at. allow and probe store the ticket
// under name; ok, fail and cancel hand back the ticket stored under name.
// want is the state after the step.
type step struct {
	at   time.Duration
	op   op
	name string
	want breaker.State
}

// calls returns the steps of n calls at instant at, each admitted and
// handed back with outcome (ok or fail) at once, the last leaving the
// breaker in state last and the others in state closed.
func calls(at time.Duration, n int, outcome op, last breaker.State) []step {
	var s []step
	for i := range n {
		want := breaker.Closed
		if i == n-1 {
			want = last
		}
		s = append(s, step{at, allow, "", breaker.Closed}, step{at, outcome, "", want})
	}
	return s
}

// pattern returns the steps of calls at instant at whose outcomes are
// given by p ('o' ok, 'x' fail), all leaving the breaker closed.
func pattern(at time.Duration, p string) []step {
	var s []step
	for _, c := range p {
		o := ok
		if c == 'x' {
			o = fail
		}
		s = append(s, step{at, allow, "", breaker.Closed}, step{at, o, "", breaker.Closed})
	}
	return s
}

func join(parts ...[]step) []step {
	var s []step
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

// run plays steps against a breaker built with opts, a fake clock and no
// jitter.
func run(t *testing.T, steps []step, opts ...breaker.Option) {
	t.Helper()
	clk := newFakeClock()
	opts = append([]breaker.Option{breaker.WithClock(clk), breaker.WithJitter(0),
		breaker.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	b := breaker.New(opts...)
	tickets := map[string]breaker.Ticket{}
	for i, st := range steps {
		clk.Set(t0.Add(st.at))
		switch st.op {
		case allow, probe, deny:
			tk, admitted := b.Allow()
			switch {
			case st.op == deny && admitted:
				t.Fatalf("step %d (t0+%v deny): Allow admitted (probe %v)", i, st.at, tk.Probe())
			case st.op != deny && !admitted:
				t.Fatalf("step %d (t0+%v %s): Allow refused", i, st.at, opNames[st.op])
			case st.op != deny && tk.Probe() != (st.op == probe):
				t.Fatalf("step %d (t0+%v %s): ticket.Probe() = %v", i, st.at, opNames[st.op], tk.Probe())
			}
			tickets[st.name] = tk
		case ok, fail:
			b.Done(tickets[st.name], st.op == ok)
		case cancel:
			b.Cancel(tickets[st.name])
		}
		if got := b.State(); got != st.want {
			t.Fatalf("step %d (t0+%v %s %q): state %v, want %v", i, st.at, opNames[st.op], st.name, got, st.want)
		}
	}
}

const (
	C = breaker.Closed
	O = breaker.Open
	H = breaker.HalfOpen
	s = time.Second
	m = time.Millisecond
)

func TestTransitions(t *testing.T) {
	ratioOnly := []breaker.Option{breaker.WithConsecutiveFailures(0), breaker.WithFailureRatio(0.5, 4, 4)}
	tests := []struct {
		name  string
		opts  []breaker.Option
		steps []step
	}{
		{"five consecutive failures open", nil, calls(0, 5, fail, O)},
		{"a success resets the consecutive count", nil,
			join(calls(0, 4, fail, C), calls(0, 1, ok, C), calls(0, 4, fail, C))},
		{"consecutive count is configurable", []breaker.Option{breaker.WithConsecutiveFailures(2)},
			join(calls(0, 1, fail, C), calls(0, 1, ok, C), calls(0, 2, fail, O))},
		// Alternating outcomes never make two failures in a row; the 10th
		// call is the 5th failure: 50% of 10 calls.
		{"half of ten calls failing opens", nil,
			join(pattern(0, "oxoxoxoxo"), calls(0, 1, fail, O))},
		{"a third of the calls failing does not open", nil, pattern(0, "xooxooxooxooxooxooxooxooxooxoo")},
		// Five of nine calls failed, but nine is below the minimum; the
		// 10th call succeeds (no check), the 11th fails: 6 of 11.
		{"the ratio waits for the minimum calls", nil,
			join(pattern(0, "xoxoxoxox"), pattern(0, "o"), calls(0, 1, fail, O))},
		// Window of 4: the three early failures slide out. Cumulatively,
		// 4 of 8 calls failed, which would have opened.
		{"old failures slide out of the window", ratioOnly,
			join(pattern(0, "xxxooooo"), calls(0, 1, fail, C), calls(0, 1, fail, O))},
		{"both triggers off never opens",
			[]breaker.Option{breaker.WithConsecutiveFailures(0), breaker.WithFailureRatio(0, 20, 10)},
			calls(0, 100, fail, C)},
		{"open refuses until the cool-down, then one probe closes", nil, join(
			calls(0, 5, fail, O),
			[]step{
				{999 * m, deny, "", O},
				{1 * s, probe, "p", H},
				{1 * s, deny, "", H},
				{1500 * m, deny, "", H},
				{1500 * m, ok, "p", C},
				{1500 * m, allow, "", C},
			})},
		{"failed probes double the cool-down up to the maximum",
			[]breaker.Option{breaker.WithMaxCoolDown(3 * s)}, join(
				calls(0, 5, fail, O),
				[]step{
					{1 * s, probe, "p", H},
					{1 * s, fail, "p", O}, // cool-down 2 s
					{2999 * m, deny, "", O},
					{3 * s, probe, "p", H},
					{3 * s, fail, "p", O}, // 4 s, capped at 3 s
					{5999 * m, deny, "", O},
					{6 * s, probe, "p", H},
					{6 * s, fail, "p", O}, // still 3 s
					{8999 * m, deny, "", O},
					{9 * s, probe, "p", H},
					{9 * s, ok, "p", C},
				},
				calls(9*s, 5, fail, O), // tripping from closed starts at 1 s again
				[]step{
					{9999 * m, deny, "", O},
					{10 * s, probe, "p", H},
				})},
		{"max cool-down below the cool-down turns doubling off",
			[]breaker.Option{breaker.WithCoolDown(2 * s), breaker.WithMaxCoolDown(s)}, join(
				calls(0, 5, fail, O),
				[]step{
					{2 * s, probe, "p", H},
					{2 * s, fail, "p", O},
					{3999 * m, deny, "", O},
					{4 * s, probe, "p", H},
				})},
		{"outcomes from an earlier state are ignored", nil, join(
			[]step{{0, allow, "a", C}, {0, allow, "b", C}, {0, allow, "c", C}},
			calls(0, 5, fail, O),
			[]step{
				{0, ok, "a", O}, // admitted while closed: does not count now
				{1 * s, probe, "p", H},
				{1 * s, fail, "b", H},
				{1 * s, ok, "p", C},
			},
			// c's failure belongs to the first closed period: with it,
			// these would be five in a row.
			[]step{{1 * s, fail, "c", C}},
			calls(1*s, 4, fail, C),
		)},
		{"a cancelled probe lets another go", nil, join(
			calls(0, 5, fail, O),
			[]step{
				{1 * s, probe, "p1", H},
				{1 * s, deny, "", H},
				{1 * s, cancel, "p1", H},
				{1 * s, probe, "p2", H},
				{1 * s, deny, "", H},
				{1 * s, fail, "p1", H}, // stale: p1 was cancelled
				{1 * s, ok, "p2", C},
			})},
		{"a probe out past its timeout counts as failed",
			[]breaker.Option{breaker.WithProbeTimeout(2 * s)}, join(
				calls(0, 5, fail, O),
				[]step{
					{1 * s, probe, "p1", H},
					{2999 * m, deny, "", H},
					{3 * s, deny, "", O}, // reopened for 2 s
					{3 * s, ok, "p1", O}, // too late
					{4999 * m, deny, "", O},
					{5 * s, probe, "p2", H},
					{5 * s, ok, "p2", C},
				})},
		{"cancelling a closed ticket counts nothing", nil, join(
			calls(0, 4, fail, C),
			[]step{{0, allow, "a", C}, {0, cancel, "a", C}},
			calls(0, 1, fail, O),
		)},
		{"the zero ticket does nothing", nil,
			[]step{{0, fail, "never issued", C}, {0, fail, "", C}, {0, fail, "", C}, {0, fail, "", C},
				{0, fail, "", C}, {0, fail, "", C}, {0, cancel, "", C}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, tt.steps, tt.opts...) })
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[breaker.State]string{C: "closed", O: "open", H: "half-open", 7: "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestNilBreakerIsClosed(t *testing.T) {
	var b *breaker.Breaker
	for range 10 {
		tk, ok := b.Allow()
		if !ok || tk.Probe() {
			t.Fatalf("nil Breaker: Allow = %v, %v; want admitted, not a probe", tk, ok)
		}
		b.Done(tk, false)
		b.Cancel(tk)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("nil Breaker: State = %v", b.State())
	}
}

func TestStateChangesAreReportedAndLogged(t *testing.T) {
	var buf bytes.Buffer
	var changes []string
	clk := newFakeClock()
	b := breaker.New(
		breaker.WithClock(clk),
		breaker.WithJitter(0),
		breaker.WithName("redis-a"),
		breaker.WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		breaker.WithOnStateChange(func(from, to breaker.State) {
			changes = append(changes, from.String()+">"+to.String())
		}),
	)
	trip := func() {
		for range 5 {
			tk, _ := b.Allow()
			b.Done(tk, false)
		}
	}
	trip()
	clk.Advance(s)
	tk, _ := b.Allow()
	b.Done(tk, false)
	clk.Advance(2 * s)
	tk, _ = b.Allow()
	b.Done(tk, true)

	want := "closed>open open>half-open half-open>open open>half-open half-open>closed"
	if got := strings.Join(changes, " "); got != want {
		t.Fatalf("OnStateChange saw %q, want %q", got, want)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	wantLogs := []string{
		`level=WARN msg="breaker: circuit open" consecutive_failures=5 window_failures=5 window_calls=5 reason="consecutive failures" cool_down=1s breaker=redis-a from=closed to=open`,
		`level=DEBUG msg="breaker: circuit half-open" reason="cool-down over" breaker=redis-a from=open to=half-open`,
		`level=DEBUG msg="breaker: circuit open" reason="probe failed" cool_down=2s breaker=redis-a from=half-open to=open`,
		`level=DEBUG msg="breaker: circuit half-open" reason="cool-down over" breaker=redis-a from=open to=half-open`,
		`level=INFO msg="breaker: circuit closed" reason="probe succeeded" breaker=redis-a from=half-open to=closed`,
	}
	if len(lines) != len(wantLogs) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(wantLogs), buf.String())
	}
	for i, w := range wantLogs {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("log line %d:\n got %s\nwant ...%s", i, lines[i], w)
		}
	}
}

// TestHalfOpenAdmitsOneProbe lets many goroutines race for the probe: exactly
// one must win, and every call must be admitted once it succeeds.
func TestHalfOpenAdmitsOneProbe(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithLogger(slog.New(slog.DiscardHandler)))
	for range 5 {
		tk, _ := b.Allow()
		b.Done(tk, false)
	}
	clk.Advance(2 * s) // past any jittered cool-down

	const goroutines, tries = 8, 1000
	var admitted atomic.Int64
	probes := make(chan breaker.Ticket, goroutines*tries)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			<-start
			for range tries {
				if tk, ok := b.Allow(); ok {
					admitted.Add(1)
					probes <- tk
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(probes)
	if n := admitted.Load(); n != 1 {
		t.Fatalf("%d calls admitted in half-open, want exactly 1", n)
	}
	p := <-probes
	if !p.Probe() {
		t.Fatal("the admitted call is not the probe")
	}
	if b.State() != breaker.HalfOpen {
		t.Fatalf("state %v, want half-open", b.State())
	}
	b.Done(p, true)
	for range 100 {
		if _, ok := b.Allow(); !ok {
			t.Fatal("Allow refused after the probe succeeded")
		}
	}
}

// TestConcurrentUse hammers a breaker from many goroutines with random
// outcomes while the clock moves, and checks that at most one probe is ever
// out and that every reported change of state is a legal one.
func TestConcurrentUse(t *testing.T) {
	clk := newFakeClock()
	var changesMu sync.Mutex
	changes := map[string]int{}
	b := breaker.New(
		breaker.WithClock(clk),
		breaker.WithCoolDown(10*m),
		breaker.WithMaxCoolDown(40*m),
		breaker.WithProbeTimeout(time.Hour), // a probe out here is never lost
		breaker.WithLogger(slog.New(slog.DiscardHandler)),
		breaker.WithOnStateChange(func(from, to breaker.State) {
			changesMu.Lock()
			changes[from.String()+">"+to.String()]++
			changesMu.Unlock()
		}),
	)

	const goroutines, iterations = 8, 20_000
	var probesOut, probes, overlaps atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range iterations {
				// The clock moves 20 µs per call: 3.2 s in all, in which
				// Redis alternates between failing 80% of calls and 5%
				// every 100 ms.
				clk.Advance(20 * time.Microsecond)
				now := clk.Now()
				failRate := 5
				if now.Sub(t0)/(100*m)%2 == 1 {
					failRate = 80
				}
				tk, ok := b.Allow()
				if !ok {
					continue
				}
				if tk.Probe() {
					probes.Add(1)
					if probesOut.Add(1) != 1 {
						overlaps.Add(1)
					}
					probesOut.Add(-1)
				}
				if rng.IntN(50) == 0 {
					b.Cancel(tk)
				} else {
					b.Done(tk, rng.IntN(100) >= failRate)
				}
			}
		})
	}
	wg.Wait()

	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d probes were issued while another was out (of %d probes)", n, probes.Load())
	}
	changesMu.Lock()
	defer changesMu.Unlock()
	legal := map[string]bool{"closed>open": true, "open>half-open": true, "half-open>open": true, "half-open>closed": true}
	for c, n := range changes {
		if !legal[c] {
			t.Errorf("illegal change %s seen %d times", c, n)
		}
	}
	for c := range legal {
		if changes[c] == 0 {
			t.Errorf("change %s never happened; the test did not exercise it (changes: %v)", c, changes)
		}
	}
}

func TestAllocs(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithLogger(slog.New(slog.DiscardHandler)))
	if n := testing.AllocsPerRun(1000, func() {
		tk, _ := b.Allow()
		b.Done(tk, true)
	}); n != 0 {
		t.Errorf("closed Allow+Done(success): %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		tk, _ := b.Allow()
		b.Done(tk, false)
		tk, _ = b.Allow()
		b.Done(tk, true)
	}); n != 0 {
		t.Errorf("closed Allow+Done(failure): %v allocs, want 0", n)
	}
	for range 5 {
		tk, _ := b.Allow()
		b.Done(tk, false)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v, want open", b.State())
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, ok := b.Allow(); ok {
			t.Fatal("open breaker admitted")
		}
	}); n != 0 {
		t.Errorf("open Allow: %v allocs, want 0", n)
	}
}

func BenchmarkAllowDone(b *testing.B) {
	quiet := breaker.WithLogger(slog.New(slog.DiscardHandler))
	b.Run("state=closed", func(b *testing.B) {
		br := breaker.New(quiet)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tk, ok := br.Allow()
				if !ok {
					b.Fatal("refused")
				}
				br.Done(tk, true)
			}
		})
	})
	b.Run("state=open", func(b *testing.B) {
		br := breaker.New(quiet, breaker.WithCoolDown(time.Hour))
		for range 5 {
			tk, _ := br.Allow()
			br.Done(tk, false)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := br.Allow(); ok {
					b.Fatal("admitted")
				}
			}
		})
	})
	b.Run("state=nil", func(b *testing.B) {
		var br *breaker.Breaker
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tk, _ := br.Allow()
				br.Done(tk, true)
			}
		})
	})
}

func Example() {
	clk := newFakeClock()
	b := breaker.New(
		breaker.WithClock(clk),
		breaker.WithJitter(0),
		breaker.WithLogger(slog.New(slog.DiscardHandler)),
	)
	call := func(redisOK bool) {
		tk, ok := b.Allow()
		if !ok {
			fmt.Println("refused at once:", b.State())
			return
		}
		b.Done(tk, redisOK)
		fmt.Printf("called Redis (probe %v): %v\n", tk.Probe(), b.State())
	}
	for range 5 {
		call(false) // Redis times out
	}
	call(true)
	clk.Advance(time.Second)
	call(true)
	// Output:
	// called Redis (probe false): closed
	// called Redis (probe false): closed
	// called Redis (probe false): closed
	// called Redis (probe false): closed
	// called Redis (probe false): open
	// refused at once: open
	// called Redis (probe true): closed
}

// TestMinFailureSpan: failures that all happen within the minimum span (a
// stall failing many calls at once) never open the breaker; the same
// failures continuing for the span do.
func TestMinFailureSpan(t *testing.T) {
	clk := newFakeClock()
	b := breaker.New(breaker.WithClock(clk), breaker.WithMinFailureSpan(250*time.Millisecond))
	fail := func() {
		tk, ok := b.Allow()
		if !ok {
			t.Fatal("refused while closed")
		}
		b.Done(tk, false)
	}
	for i := 0; i < 30; i++ { // a 100 ms stall fails 30 calls
		fail()
		clk.Advance(3 * time.Millisecond)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("state %v after failures spanning 90 ms, want closed", b.State())
	}
	tk, _ := b.Allow()
	b.Done(tk, true)          // Redis answers again
	for i := 0; i < 30; i++ { // failures for 300 ms
		fail()
		if b.State() != breaker.Closed {
			break
		}
		clk.Advance(10 * time.Millisecond)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after failures spanning 300 ms, want open", b.State())
	}
}
