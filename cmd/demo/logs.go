package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
)

// logCounter is a slog.Handler that counts the warnings and errors the
// library logs (a refund that failed, a circuit breaker that opened)
// instead of printing them through the live view; the summary reports
// them. Safe for concurrent use.
type logCounter struct {
	mu    sync.Mutex // protects n, first
	n     int
	first string
}

var _ slog.Handler = (*logCounter)(nil)

// install makes c the default slog handler, where the limiters made from
// now on log, and returns the function that restores the previous one.
func (c *logCounter) install() (restore func()) {
	prev, out, flags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(c))
	return func() {
		slog.SetDefault(prev)
		// SetDefault sent the log package's output to c: take it back.
		log.SetOutput(out)
		log.SetFlags(flags)
	}
}

func (c *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n == 1 {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		c.first = b.String()
	}
	return nil
}

func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// String reports the count and the first record, or "" if none.
func (c *logCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return ""
	}
	return fmt.Sprintf("The library logged %d warnings; the first:\n  %s\n", c.n, clip(c.first, 94))
}
