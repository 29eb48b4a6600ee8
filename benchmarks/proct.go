package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
)

// procT lets the benchmarks use redistest's Server, whose Start, Freeze and
// Restart take a testing.TB, outside a test: it implements the methods
// they call (Helper, TempDir, Cleanup, Fatal, Fatalf, Skip and kin).
// The embedded TB is nil; any other method would panic, and do turns that
// into an error. Call redistest only inside do, and cleanup at the end.
type procT struct {
	testing.TB

	mu       sync.Mutex // protects the fields below
	cleanups []func()
	failure  error
}

func (t *procT) Helper()                         {}
func (t *procT) Name() string                    { return "benchmarks" }
func (t *procT) Log(args ...any)                 {}
func (t *procT) Logf(format string, args ...any) {}

// Cleanup registers f to run at cleanup, last registered first.
func (t *procT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir returns a new directory, removed at cleanup.
func (t *procT) TempDir() string {
	dir, err := os.MkdirTemp("", "ratelimit-degraded-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fail records err (the first wins) and ends the calling goroutine, as
// testing's FailNow does.
func (t *procT) fail(err error) {
	t.mu.Lock()
	if t.failure == nil {
		t.failure = err
	}
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *procT) Fatal(args ...any)                 { t.fail(errors.New(fmt.Sprint(args...))) }
func (t *procT) Fatalf(format string, args ...any) { t.fail(fmt.Errorf(format, args...)) }
func (t *procT) Error(args ...any)                 { t.fail(errors.New(fmt.Sprint(args...))) }
func (t *procT) Errorf(format string, args ...any) { t.fail(fmt.Errorf(format, args...)) }
func (t *procT) FailNow()                          { t.fail(errors.New("FailNow")) }
func (t *procT) Skip(args ...any)                  { t.fail(fmt.Errorf("%w: %s", errNoServer, fmt.Sprint(args...))) }

func (t *procT) Skipf(format string, args ...any) {
	t.fail(fmt.Errorf("%w: %s", errNoServer, fmt.Sprintf(format, args...)))
}

func (t *procT) SkipNow() { t.fail(errNoServer) }

// do runs f on a goroutine of its own, so that a Fatal or Skip inside it
// (runtime.Goexit) or a panic ends f alone, and returns what ended it.
func (t *procT) do(f func()) error {
	done := make(chan error, 1)
	go func() {
		finished := false
		defer func() {
			if finished {
				done <- nil
				return
			}
			if p := recover(); p != nil {
				done <- fmt.Errorf("redistest: %v", p)
				return
			}
			t.mu.Lock()
			err := t.failure
			t.mu.Unlock()
			if err == nil {
				err = errors.New("redistest: ended without a reason")
			}
			done <- err
		}()
		f()
		finished = true
	}()
	return <-done
}

// cleanup runs the registered cleanups, last registered first.
func (t *procT) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
