// Package redistest runs real redis-server processes for tests: each on a
// free loopback port, in a temporary directory, stopped when the test ends.
// Tests can kill, restart and pause the server to inject faults.
//
// [StartCluster] builds a Redis Cluster of such servers (masters and
// replicas) with redis-cli, and can fail a master over or move a slot, so
// tests can exercise MOVED, ASK and failover.
//
// When redis-server (or, for a cluster, redis-cli) is not on PATH, tests
// that need it are skipped with a message that says how to install it,
// except when the CI environment variable is set: then they fail, so a CI
// run can never pass by skipping.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary returns the path of redis-server, or fails or skips t as the
// package doc describes.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, "redis-server")
}

func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH; install it with `apt-get install redis-server redis-tools` (Debian/Ubuntu) or `brew install redis`", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is a failure, not a skip)")
	}
	t.Skip(msg)
	return ""
}

// Server is one redis-server process. Its methods are safe for concurrent
// use, except that Kill, Restart and Stop must not race each other.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu  sync.Mutex // protects cmd
	cmd *exec.Cmd
}

// Start starts a redis-server on a free loopback port in a temporary
// directory and stops it when t ends. extra are additional server
// arguments, such as "--cluster-enabled", "yes".
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), args: extra}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory.
func (s *Server) Dir() string { return s.dir }

// Client returns a new client of the server, closed when the test ends.
// It honours context deadlines (ContextTimeoutEnabled) and does not retry,
// so fault tests see failures as they happen. opts may adjust it.
func (s *Server) Client(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{
		Addr:                  s.Addr(),
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *Server) start() error {
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--enable-debug-command", "local",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := waitReady(s.Addr(), exited, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(s.dir, "redis.log")))
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// waitReady polls addr with PING until it answers PONG.
func waitReady(addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited during start", addr)
		default:
		}
		if ping(addr) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s not ready after %v", addr, limit)
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL), as a crash would. Its data is
// lost: it keeps nothing on disk.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	for i := 0; i < 500 && ping(s.Addr()) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port after Kill, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // the port may linger briefly
	}
	s.t.Fatalf("redistest: restart redis-server: %v", err)
}

// Pause makes the server stop answering clients for d (CLIENT PAUSE ALL),
// as a slow or stalled server would. It returns at once.
func (s *Server) Pause(d time.Duration) {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
		s.t.Fatalf("redistest: CLIENT PAUSE: %v", err)
	}
}

// Stop stops the server. Tests need not call it: Start registers it as a
// cleanup.
func (s *Server) Stop() { s.Kill() }

var prefixSeq atomic.Int64

// Prefix returns a key prefix unique to t within this process, so tests
// sharing a server never touch each other's keys and never need FLUSHDB.
func Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", ".", " ", "_", "{", "(", "}", ")").Replace(t.Name())
	return fmt.Sprintf("t%d.%s:", prefixSeq.Add(1), name)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Freeze stops the server process (SIGSTOP) for d and then lets it go on
// (SIGCONT), as a stalled machine or a long fork would: connections stay
// open and the kernel keeps accepting and buffering, but nothing is
// answered meanwhile. It returns at once; the server is resumed when the
// test ends at the latest.
func (s *Server) Freeze(d time.Duration) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatal("redistest: Freeze: the server is not running")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: SIGSTOP: %v", err)
	}
	var once sync.Once
	resume := func() { once.Do(func() { _ = cmd.Process.Signal(syscall.SIGCONT) }) }
	time.AfterFunc(d, resume)
	s.t.Cleanup(resume)
}
