package redistest

import (
	"errors"
	"fmt"
	"os/exec"
)

// ErrNoBinary is returned by [StartProcess] when redis-server is not on
// PATH.
var ErrNoBinary = errors.New("redistest: redis-server not found on PATH; install it with `apt-get install redis-server redis-tools` (Debian/Ubuntu) or `brew install redis`")

// Proc is a redis-server process started by [StartProcess], for programs
// that have no testing.TB (the benchmarks runner). It is the same server a
// test gets from [Start]: loopback only, nothing kept on disk.
//
// Stop is safe to call more than once, but not concurrently.
type Proc struct{ s *Server }

// StartProcess starts a redis-server on a free 127.0.0.1 port with dir as
// its working directory, and returns once it answers PING. The caller owns
// dir and must call [Proc.Stop]; nothing stops the process otherwise.
// extra are additional server arguments.
func StartProcess(dir string, extra ...string) (*Proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoBinary
	}
	// Server.start and Server.Kill use neither t nor any method that does,
	// so a Server without a test is safe as long as Proc exposes only them.
	s := &Server{bin: bin, dir: dir, args: extra}
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			return &Proc{s: s}, nil
		}
	}
	return nil, fmt.Errorf("redistest: start redis-server: %w", err)
}

// Addr returns the server's host:port.
func (p *Proc) Addr() string { return p.s.Addr() }

// Port returns the server's port.
func (p *Proc) Port() int { return p.s.Port() }

// Stop kills the server and waits until its port no longer answers (at
// most 5 s).
func (p *Proc) Stop() { p.s.Kill() }
