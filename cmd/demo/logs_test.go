package main

import (
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestLogCounter(t *testing.T) {
	var buf strings.Builder
	log.SetOutput(&buf)
	defer log.SetOutput(os.Stderr)
	c := &logCounter{}
	restore := c.install()
	slog.Warn("first", "n", 1)
	slog.Info("not counted")
	slog.Error("second")
	log.Print("to the counter, at info: dropped")
	restore()
	log.Print("back in the log package")
	if got := c.String(); !strings.Contains(got, "logged 2 warnings") || !strings.Contains(got, "first n=1") {
		t.Errorf("String() = %q", got)
	}
	if !strings.Contains(buf.String(), "back in the log package") || strings.Contains(buf.String(), "dropped") {
		t.Errorf("log output = %q", buf.String())
	}
}
