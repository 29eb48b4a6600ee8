package tiers

import (
	"bytes"
	"context"
	"reflect"
	"time"
)

// WatchFile reloads l from the YAML config file at path whenever the
// file's contents change, reading it every interval (at least 10 ms),
// until ctx is done; then it returns ctx's error. The first read happens
// after one interval; it reloads only if the file no longer matches the
// config in force (so a change made after New read the file is not
// missed).
//
// Like [LoadFile], it reads no more of the file than [MaxConfigSize]
// allows. A file that cannot be read, is too large or is invalid keeps
// the config in force; the reason is logged to the Limiter's logger and
// passed to its reload hook ([WithReloadHook]). The same contents are not tried twice, so a broken
// file is reported once, not every interval. A file that parses to the
// config in force (say, after editing a comment) causes no reload.
//
// WatchFile runs on the caller's goroutine and starts none; run it with
// go and cancel ctx to stop it.
func WatchFile(ctx context.Context, l *Limiter, path string, interval time.Duration) error {
	interval = max(interval, 10*time.Millisecond)
	var (
		last    []byte // the contents last tried
		tried   bool   // whether last is set
		readErr bool   // whether the last read failed (and was reported)
	)
	report := func(err error, msg string) {
		l.cfg.logger.Warn(msg, "path", path, "err", err)
		if l.cfg.onReload != nil {
			l.cfg.onReload(err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		data, err := readConfigFile(path) // at most MaxConfigSize + 1 bytes, as LoadFile
		if err != nil {
			if !readErr {
				report(err, "tiers: cannot read config file; keeping the config in force")
			}
			readErr, tried = true, false
			continue
		}
		readErr = false
		if tried && bytes.Equal(data, last) {
			continue
		}
		last, tried = data, true
		cfg, err := Parse(path, data)
		if err != nil {
			report(err, "tiers: config file rejected; keeping the config in force")
			continue
		}
		if reflect.DeepEqual(cfg, l.Config()) {
			continue // only comments or layout changed, or New read it already
		}
		if err := l.Reload(cfg); err != nil { // calls the hook
			l.cfg.logger.Warn("tiers: config file rejected; keeping the config in force", "path", path, "err", err)
			continue
		}
		l.cfg.logger.Info("tiers: config reloaded", "path", path)
	}
}
