//go:build unix

package tiers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit/tiers"
)

// TestWatchFileReadsAtMostMaxConfigSize: WatchFile reads no more of the
// watched file than MaxConfigSize allows, as LoadFile does, and refuses
// it as too large. The file is a FIFO whose writer sends MaxConfigSize + 1
// bytes and then holds it open: a reader that reads to the end never
// returns (as one that reads a huge file whole exhausts memory), so
// without the bound no refusal is reported.
func TestWatchFileReadsAtMostMaxConfigSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiers.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			wrote <- err
			return
		}
		defer f.Close()
		_, err = f.Write(bytes.Repeat([]byte("#"), tiers.MaxConfigSize+1))
		wrote <- err
		<-done
	}()
	hook := make(chan error, 100)
	l := newLimiter(t, (&fakes{}).factory, twoLimits(5), tiers.WithReloadHook(func(err error) { hook <- err }),
		tiers.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- tiers.WatchFile(ctx, l, path, 10*time.Millisecond) }()
	defer func() {
		cancel()
		close(done) // the writer closes its end: a read in progress ends
		// WatchFile may instead be opening the FIFO again, which blocks
		// until a writer opens it: open it for writing (without blocking:
		// that fails while no reader waits) until WatchFile returns, for
		// at most 30 s.
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case err := <-watched:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("WatchFile returned %v, want context.Canceled", err)
				}
				return
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Error("WatchFile did not return within 30 s of its context's end")
				return
			}
			if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close() // the waiting reader opens, and reads EOF
			}
		}
	}()

	var ce *tiers.ConfigError
	select {
	case err := <-hook:
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "MaxConfigSize") {
			t.Errorf("hook got %v, want the file refused as larger than MaxConfigSize", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not on speed
		t.Fatal("WatchFile reported nothing: it is still reading the file to its end")
	}
	if err := <-wrote; err != nil {
		t.Errorf("writing the FIFO: %v", err)
	}
	if got := l.Config().Tiers[0].Limits[0].Budget.Rate; got != 5 {
		t.Errorf("rate after an oversized file = %d, want 5 kept", got)
	}
}
