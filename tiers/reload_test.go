package tiers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributedratelimiter/ratelimit"
	"github.com/distributedratelimiter/ratelimit/tiers"
)

// twoLimits returns a config whose "free" tier has a per-second limit of
// rate and a fixed daily limit.
func twoLimits(rate int) tiers.Config {
	return tiers.Config{
		Tiers: []tiers.Tier{
			{Name: "free", Limits: []tiers.Limit{
				tiers.Client("second", ratelimit.PerSecond(rate)),
				tiers.Client("day", ratelimit.Per(1_000_000, 24*time.Hour)),
				tiers.Shared("all", ratelimit.PerSecond(1_000_000)),
			}},
			{Name: "pro", Limits: []tiers.Limit{tiers.Client("second", ratelimit.PerSecond(1_000_000))}},
		},
		DefaultTier: "free",
		Clients:     map[string]string{"p": "pro"},
	}
}

// eventually polls cond every 5 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("after 5s: %s", what)
}

// TestReloadUnderLoad reloads while goroutines check, under -race: no
// check may fail, no limiter may be used after it is closed, and every
// limiter is closed exactly once by the end.
func TestReloadUnderLoad(t *testing.T) {
	fs := &fakes{}
	l, err := tiers.New(fs.factory, twoLimits(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	const workers, checks, reloads = 4, 1500, 40
	ctx := context.Background()
	var failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range checks {
				key := fmt.Sprintf("k%d", (w*checks+i)%50)
				if i%7 == 0 {
					key = "p"
				}
				res, err := l.Check(ctx, key, "", 1)
				if err != nil || !res.Decision.Allowed {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %+v, %v", key, res.Decision, err))
				}
			}
		}()
	}
	for i := range reloads {
		// Alternate the per-second rate: that limiter is replaced every
		// time, the others are kept.
		if err := l.Reload(twoLimits(1_000_000 - (i+1)%2)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d checks failed during reloads; first: %v", n, firstErr.Load())
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	made := fs.all()
	// 4 limiters at first; each reload replaces free/second only.
	if want := 4 + reloads; len(made) != want {
		t.Errorf("factory made %d limiters over %d reloads, want %d (unchanged limits reused)", len(made), reloads, want)
	}
	for _, f := range made {
		if c := f.closes.Load(); c != 1 {
			t.Errorf("limiter %s/%s (%v) closed %d times, want 1", f.spec.Tier, f.spec.Limit.Name, f.spec.Limit.Budget, c)
		}
		if n := f.afterClose.Load(); n != 0 {
			t.Errorf("limiter %s/%s used %d times after Close", f.spec.Tier, f.spec.Limit.Name, n)
		}
	}
}

// blockingFakes makes fakes of the rate-1 per-second limit block until
// released, so a check can be held in flight.
func blockingFakes(entered, release chan struct{}) *fakes {
	return &fakes{setup: func(f *fake) {
		if f.spec.Limit.Name == "second" && f.spec.Limit.Budget.Rate == 1 {
			f.entered, f.release = entered, release
		}
	}}
}

// TestReloadInFlightFinishesOnOldConfig holds a check inside the old
// per-second limiter while the config is replaced: the check completes
// under the old config, and the old limiter is closed only afterwards.
func TestReloadInFlightFinishesOnOldConfig(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	fs := blockingFakes(entered, release)
	l := newLimiter(t, fs.factory, twoLimits(1), tiers.WithGracePeriod(time.Minute))
	old := fs.find("free", "second")

	done := make(chan tiers.Result)
	go func() {
		res, err := l.Check(context.Background(), "k", "", 1)
		if err != nil {
			t.Errorf("in-flight check: %v", err)
		}
		done <- res
	}()
	<-entered // the check is inside the old limiter
	if err := l.Reload(twoLimits(7)); err != nil {
		t.Fatal(err)
	}
	// New checks use the new config at once.
	res, err := l.Check(context.Background(), "k2", "", 1)
	if err != nil || res.Limits[0].Limit.Rate != 7 {
		t.Fatalf("check after reload: rate %d, %v; want 7", res.Limits[0].Limit.Rate, err)
	}
	time.Sleep(20 * time.Millisecond)
	if c := old.closes.Load(); c != 0 {
		t.Fatalf("old limiter closed while a check was still inside it")
	}
	close(release)
	res = <-done
	if !res.Decision.Allowed || res.Limits[0].Limit.Rate != 1 {
		t.Errorf("in-flight check finished with %+v (rate %d); want it admitted under the old rate 1", res.Decision, res.Limits[0].Limit.Rate)
	}
	eventually(t, "old limiter closed after its last check", func() bool { return old.closes.Load() == 1 })
	if n := old.afterClose.Load(); n != 0 {
		t.Errorf("old limiter used %d times after Close", n)
	}
}

// TestReloadGracePeriod: a check stuck past the grace period does not keep
// the old limiter open.
func TestReloadGracePeriod(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	fs := blockingFakes(entered, release)
	l := newLimiter(t, fs.factory, twoLimits(1), tiers.WithGracePeriod(30*time.Millisecond))
	old := fs.find("free", "second")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.Check(context.Background(), "k", "", 1)
	}()
	<-entered
	if err := l.Reload(twoLimits(7)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old limiter closed after the grace period", func() bool { return old.closes.Load() == 1 })
	close(release)
	<-done
}

func TestReloadInvalidKeepsOld(t *testing.T) {
	var hook []error
	fs := &fakes{}
	l := newLimiter(t, fs.factory, twoLimits(5), tiers.WithReloadHook(func(err error) { hook = append(hook, err) }))
	made := len(fs.all())

	bad := twoLimits(5)
	bad.Tiers[0].Limits[0].Budget.Rate = 0
	if err := l.Reload(bad); !errors.Is(err, tiers.ErrInvalidConfig) {
		t.Errorf("invalid reload: %v, want ErrInvalidConfig", err)
	}
	// A new per-second limiter is made, then the factory fails on a new
	// tier's limit.
	fs.failName = "boom"
	failing := twoLimits(6)
	failing.Tiers = append(failing.Tiers, tiers.Tier{Name: "gold", Limits: []tiers.Limit{tiers.Client("boom", ratelimit.PerSecond(1))}})
	if err := l.Reload(failing); err == nil {
		t.Error("reload whose factory fails: no error")
	}
	if got := l.Config().Tiers[0].Limits[0].Budget.Rate; got != 5 {
		t.Errorf("rate in force = %d, want the old 5", got)
	}
	res, err := l.Check(context.Background(), "k", "", 1)
	if err != nil || res.Limits[0].Limit.Rate != 5 {
		t.Errorf("check after failed reloads: rate %d, %v; want 5", res.Limits[0].Limit.Rate, err)
	}
	if len(hook) != 2 || hook[0] == nil || hook[1] == nil {
		t.Errorf("reload hook got %v, want two errors", hook)
	}
	// What the failed reload made is closed; the limiters in force are not.
	if len(fs.all()) != made+1 {
		t.Fatalf("the failed reload made %d limiters, want 1", len(fs.all())-made)
	}
	for i, f := range fs.all() {
		if want := int64(0); i >= made {
			want = 1
			if f.closes.Load() != want {
				t.Errorf("limiter made by the failed reload closed %d times, want 1", f.closes.Load())
			}
		} else if f.closes.Load() != want {
			t.Errorf("limiter in force closed")
		}
	}
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiers.yaml")
	write := func(rate int, extra string) {
		t.Helper()
		data := fmt.Sprintf("default_tier: free\ntiers:\n  free:\n    limits:\n      second: {rate: %d, period: 1s%s}\n", rate, extra)
		// Write and rename, as editors and config management do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(3, "")
	cfg, err := tiers.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hook := make(chan error, 10)
	fs := &fakes{}
	l := newLimiter(t, fs.factory, cfg, tiers.WithReloadHook(func(err error) { hook <- err }),
		tiers.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error)
	go func() { watched <- tiers.WatchFile(ctx, l, path, 10*time.Millisecond) }()
	next := func() error {
		t.Helper()
		select {
		case err := <-hook:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("no reload within 5s")
			return nil
		}
	}
	rate := func() int { return l.Config().Tiers[0].Limits[0].Budget.Rate }

	write(4, "")
	if err := next(); err != nil || rate() != 4 {
		t.Errorf("after writing rate 4: hook %v, rate %d", err, rate())
	}
	write(5, ", brust: 9")
	err = next()
	if !errors.Is(err, tiers.ErrInvalidConfig) || !strings.Contains(err.Error(), "tiers.yaml:5:") {
		t.Errorf("after writing a broken file: hook %v, want an error at tiers.yaml:5", err)
	}
	if rate() != 4 {
		t.Errorf("rate after a broken file = %d, want 4 kept", rate())
	}
	write(6, "")
	if err := next(); err != nil || rate() != 6 {
		t.Errorf("after fixing the file: hook %v, rate %d", err, rate())
	}
	cancel()
	if err := <-watched; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchFile returned %v, want context.Canceled", err)
	}
}
