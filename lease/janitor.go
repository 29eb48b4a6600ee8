package lease

import (
	"context"
	"time"
)

// tick returns the janitor's period: a quarter of the lease TTL.
func (l *Limiter) tick() time.Duration {
	return max(l.cfg.leaseTTL/4, time.Millisecond)
}

// runJanitor expires old leases and evicts idle keys until Close.
func (l *Limiter) runJanitor() {
	defer close(l.janitor)
	t := time.NewTicker(l.tick())
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// sweep runs one janitor pass over every entry: it takes back the unspent
// tokens of leases that would outlive the TTL before the next pass, and evicts entries idle for the idle
// timeout, then gives the tokens back to Redis.
func (l *Limiter) sweep() {
	now := l.now()
	// Take back grants older than TTL - tick: the next pass is at most a
	// tick away, so no token is served more than TTL after its grant.
	cutoff := now - int64(l.cfg.leaseTTL-l.tick())
	type back struct {
		key string
		n   int64
	}
	var backs []back
	l.entries.Range(func(e *entry) bool {
		e.mu.Lock()
		n := e.expire(cutoff)
		l.stats.expired.Add(n)
		if e.idle(now, l.cfg.idleTimeout) {
			n += e.kill()
			l.entries.CompareAndDelete(e.key, e)
			l.uncacheHot(e)
			l.count.Add(-1)
			l.stats.evicted.Add(1)
		}
		e.mu.Unlock()
		if n > 0 {
			// The tokens go back to Redis: a remembered denial is stale.
			e.forgetDenial()
			l.stats.removed.Add(n)
			backs = append(backs, back{e.key, n})
		}
		return true
	})
	for _, b := range backs {
		l.returnTokens(b.key, b.n)
	}
}

// enter registers a refill about to run, or reports false once Close has
// begun waiting for refills.
func (l *Limiter) enter() bool {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	if l.closing {
		return false
	}
	l.bg.Add(1)
	return true
}

// Close stops the limiter: later calls fail with [ratelimit.ErrClosed],
// refills in flight are cancelled, and every unspent leased token is given
// back to Redis, bounded by ctx. It waits for every goroutine the limiter
// started. Close is idempotent; calls after the first return nil at once.
func (l *Limiter) Close(ctx context.Context) error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	l.cancel()
	<-l.janitor
	l.bgMu.Lock()
	l.closing = true
	l.bgMu.Unlock()
	l.bg.Wait()

	var err error
	l.entries.Range(func(e *entry) bool {
		e.mu.Lock()
		n := e.kill()
		l.entries.CompareAndDelete(e.key, e)
		l.uncacheHot(e)
		e.mu.Unlock()
		l.count.Add(-1)
		if n > 0 {
			l.stats.removed.Add(n)
			if err = ctx.Err(); err != nil {
				return false
			}
			l.returnTokens(e.key, n)
		}
		return true
	})
	return err
}
