package tiers

import (
	"context"
	"errors"
	"time"

	"github.com/distributedratelimiter/ratelimit"
)

// Reload validates cfg and, if it is valid and every limiter it needs can
// be made, swaps it in atomically. On error the old config stays in force.
// Limiters of unchanged limits are kept; the others are retired as the
// type documentation describes. Reloads are serialized.
func (l *Limiter) Reload(cfg Config) error {
	err := l.reload(cfg)
	if l.cfg.onReload != nil {
		l.cfg.onReload(err)
	}
	return err
}

// ReloadFile loads the YAML config file at path ([LoadFile]) and reloads
// it. An invalid file keeps the old config and returns why.
func (l *Limiter) ReloadFile(path string) error {
	cfg, err := LoadFile(path)
	if err != nil {
		if l.cfg.onReload != nil {
			l.cfg.onReload(err)
		}
		return err
	}
	return l.Reload(cfg)
}

func (l *Limiter) reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur.Load()
	if old == nil {
		return ratelimit.ErrClosed
	}
	s, created, err := l.build(cfg, old)
	if err != nil {
		l.closeAll(created)
		return err
	}
	l.cur.Store(s)
	l.retire(old, old.unusedBy(s), l.cfg.grace, true)
	return nil
}

// Close stops the Limiter: later calls fail with [ratelimit.ErrClosed].
// It waits for checks in flight and for limiters retired by earlier
// reloads, then closes every limiter that has a Close(context.Context)
// error method. If ctx ends first, it closes them at once and returns
// ctx's error joined with any close errors. Close is idempotent; later
// calls wait for the first to finish and return its result.
func (l *Limiter) Close(ctx context.Context) error {
	if !l.closing.CompareAndSwap(false, true) {
		select {
		case <-l.closed:
			return l.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	s := l.cur.Swap(nil)
	r := l.retire(s, s.all(), 0, false)
	l.mu.Unlock()
	var err error
	select {
	case <-r.done:
	case <-ctx.Done():
		err = ctx.Err()
		l.force()
		<-r.done
	}
	l.force()
	l.closeErr = errors.Join(err, r.err)
	close(l.closed)
	return l.closeErr
}

// retirement is the closing of a snapshot that is no longer in force.
type retirement struct {
	done chan struct{} // closed when finished
	err  error         // close errors; written before done is closed
}

// retire closes toClose once s has no checks in flight, or grace has
// passed (grace <= 0: no bound), or Close forces it; and never before the
// previous retirement has finished, since it may close limiters that the
// previous snapshot shared. l.mu must be held.
func (l *Limiter) retire(s *snapshot, toClose []ratelimit.Limiter, grace time.Duration, logErrs bool) *retirement {
	s.retired.Store(true)
	if s.refs.Load() == 0 {
		s.markDrained()
	}
	r := &retirement{done: make(chan struct{})}
	prev := l.lastDone
	l.lastDone = r.done
	go func() {
		defer close(r.done)
		var timeout <-chan time.Time
		if grace > 0 {
			t := time.NewTimer(grace)
			defer t.Stop()
			timeout = t.C
		}
		if prev != nil {
			<-prev // bounded by its own grace period or by Close
		}
		select {
		case <-s.drained:
		case <-timeout:
		case <-l.forceCtx.Done():
		}
		r.err = l.closeAll(toClose)
		if r.err != nil && logErrs {
			l.cfg.logger.Warn("tiers: closing a limiter retired by reload failed", "err", r.err)
		}
	}()
	return r
}

type closer interface {
	Close(context.Context) error
}

// closeAll closes the limiters that can be closed.
func (l *Limiter) closeAll(ls []ratelimit.Limiter) error {
	var errs []error
	for _, x := range ls {
		c, ok := x.(closer)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(l.forceCtx, closeTimeout)
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	return errors.Join(errs...)
}
